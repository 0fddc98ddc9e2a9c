//! Runs agent turns for the routes that start them (`/api/chat`, `/api/voice`).
//!
//! Owns driving one [`Turn`] of axon-core: it performs the I/O the turn asks for (model
//! requests through [`crate::providers`], tool calls through the Hub, waiting for a person's
//! confirmation for at most 60 s), sends the turn's events to the caller and mirrors them on
//! `/api/events`, and stores the conversation. What happens in a turn is axon-core's; which
//! request started it is the route's.

use std::time::Duration;

use axon_core::agent::llm::Message;
use axon_core::agent::turn::{agent_tools, Action, Turn, TurnConfig, TurnEvent, TurnUpdate};
use axon_core::protocol::jsonrpc::ErrorObject;
use futures_channel::mpsc;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use worker::Result;

use crate::clock::now;
use crate::hub::Ctx;
use crate::memory::Memory;
use axon_core::trust::access::Principal;

/// How long a `confirm` tool waits for the person.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a turn's updates go: `Started` (sent by whoever began it), its events, `Done`.
pub type TurnSink = mpsc::UnboundedSender<TurnUpdate>;

/// A turn on `message` for `person` (None: someone without a memory, e.g. a widget's
/// visitor), with their memory and the devices online now. `id` names it (and prefixes its
/// call ids); a fresh one is made when it is `None`.
pub async fn begin_turn(
    ctx: &Ctx,
    id: Option<String>,
    person: Option<&str>,
    device: Option<String>,
    message: Message,
) -> Result<(String, Turn)> {
    ctx.settle_discovery().await;
    let (summary, history) = match person {
        Some(user) => Memory::open(ctx.sql())?.recall(user)?,
        None => Default::default(),
    };
    let turn_id = id.unwrap_or_else(|| ctx.next_turn_id());
    // At a big site a turn sees the devices its words name, not all of them.
    let devices = ctx.turn_devices(&message.text_content(), device.as_deref());
    let tools = agent_tools(&devices, &ctx.config().policy);
    let config = TurnConfig {
        max_steps: ctx.config().max_steps,
        model: ctx.config().model.clone(),
        persona: ctx.config().persona.clone(),
        call_prefix: format!("{turn_id}."),
        device,
        vision: ctx.config().vision(),
    };
    let turn = Turn::new(config, tools, Some(&summary), history, message);
    Ok((turn_id, turn))
}

enum Completion {
    Tool(String, std::result::Result<Value, ErrorObject>),
    Confirm(String, bool),
}

/// Runs a turn to its end: performs what it asks, sends its events to `tx` and `/api/events`,
/// and remembers the conversation.
/// `who` is the credential (for the activity log), `person` whose memory the turn uses.
pub async fn drive(
    ctx: Ctx,
    turn_id: String,
    who: Principal,
    person: Option<String>,
    mut turn: Turn,
    tx: TurnSink,
) {
    let user = person.clone().unwrap_or_else(|| who.label());
    let publish = |ctx: &Ctx, ev: &TurnEvent| {
        if let TurnEvent::ToolFinished {
            device,
            tool,
            ok,
            error,
            ..
        } = ev
        {
            let refused = error
                .as_ref()
                .is_some_and(|e| e.code == axon_core::protocol::jsonrpc::code::DENIED);
            let failed = ErrorObject::new(
                axon_core::protocol::jsonrpc::code::INTERNAL_ERROR,
                "the tool reported an error",
            );
            let outcome = match (ok, error) {
                (true, _) => Ok(()),
                (false, Some(e)) => Err(e),
                (false, None) => Err(&failed),
            };
            ctx.store()
                .record(&who.label(), "agent", device, tool, outcome, refused);
        }
        // The client may have gone; the turn still finishes and is remembered.
        let _ = tx.unbounded_send(TurnUpdate::Event(ev.clone()));
        if !matches!(ev, TurnEvent::TextDelta { .. }) {
            let v = serde_json::to_value(ev).unwrap_or(Value::Null);
            ctx.publish_event("agent", &json!({"turn": turn_id, "user": user, "event": v}));
        }
    };
    let mut pending: FuturesUnordered<LocalBoxFuture<'static, Completion>> =
        FuturesUnordered::new();
    loop {
        while let Some(ev) = turn.poll_event() {
            publish(&ctx, &ev);
        }
        if turn.is_done() {
            break;
        }
        match turn.poll_action() {
            Some(Action::Llm(req)) => {
                let devices = ctx.devices_of(turn.tools());
                let mut on_delta = |t: &str| {
                    let _ = tx.unbounded_send(TurnUpdate::Event(TurnEvent::TextDelta {
                        text: t.to_string(),
                    }));
                };
                let outcome = crate::providers::complete(
                    &ctx.config().llm,
                    ctx.env(),
                    &req,
                    &devices,
                    turn.tools(),
                    &mut on_delta,
                )
                .await;
                match outcome {
                    Ok(reply) => turn.handle_reply(now(), reply),
                    Err(e) => turn.handle_llm_error(&e),
                }
            }
            Some(Action::Vision(req)) => {
                let mut on_delta = |t: &str| {
                    let _ = tx.unbounded_send(TurnUpdate::Event(TurnEvent::TextDelta {
                        text: t.to_string(),
                    }));
                };
                match crate::providers::look(&ctx.config().vlm, &req, &mut on_delta).await {
                    Ok(reply) => turn.handle_reply(now(), reply),
                    Err(e) => turn.handle_llm_error(&e),
                }
            }
            Some(Action::CallTool {
                id,
                device,
                tool,
                arguments,
            }) => {
                let ctx = ctx.clone();
                pending.push(
                    async move {
                        let r = ctx.call_tool(&device, &tool, arguments).await;
                        Completion::Tool(id, r)
                    }
                    .boxed_local(),
                );
            }
            Some(Action::AwaitConfirmation { id }) => {
                let orx = ctx.await_confirmation(&id);
                pending.push(
                    async move {
                        let timeout = worker::Delay::from(CONFIRM_TIMEOUT).fuse();
                        let answer = orx.fuse();
                        futures_util::pin_mut!(timeout, answer);
                        let ok = futures_util::select! {
                            a = answer => a.unwrap_or(false),
                            _ = timeout => false,
                        };
                        Completion::Confirm(id, ok)
                    }
                    .boxed_local(),
                );
            }
            None => match pending.next().await {
                Some(Completion::Tool(id, r)) => turn.handle_tool_result(now(), &id, r),
                Some(Completion::Confirm(id, ok)) => {
                    ctx.drop_confirmation(&id);
                    turn.handle_confirmation(now(), &id, ok);
                }
                None => {
                    turn.handle_llm_error("the turn stalled with nothing left to wait for");
                }
            },
        }
    }
    let remembered = match &person {
        Some(p) => Memory::open(ctx.sql())
            .and_then(|m| m.remember(p, &turn.to_remember(), now().as_millis())),
        None => Ok(()),
    };
    if let Err(e) = remembered {
        let _ = tx.unbounded_send(TurnUpdate::Event(TurnEvent::Error {
            message: format!("the answer was not saved to memory: {e}"),
        }));
    }
    let _ = tx.unbounded_send(TurnUpdate::Done { turn: turn_id });
}
