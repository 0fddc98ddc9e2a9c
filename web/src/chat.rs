//! Chat with the agent: a text box, the streamed answer, tool-call chips with timings, and a
//! confirmation dialog for `confirm` tools. Used by the console and by the widget.
//!
//! Owns only presentation: the turn runs in the Hub (`POST /api/chat`, SSE) and approvals go to
//! `POST /api/confirm`. It never talks to a model or holds a key.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::json::object;
use crate::util::{fetch_json, post_sse};
use crate::voice::{VoicePanel, VoiceUi};

#[derive(Clone, Debug, PartialEq)]
pub struct Chip {
    pub id: String,
    pub label: String,
    pub state: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub who: &'static str,
    pub text: RwSignal<String>,
    pub chips: RwSignal<Vec<Chip>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub id: String,
    pub prompt: String,
}

/// The chat panel. `api` is the worker's origin ("" for the same origin). With `voice`, a
/// push-to-talk button speaks to the agent over `/api/voice`; what it heard and answered join
/// the conversation. Who speaks is the page's credential's (the console's session, the
/// widget's key: [`crate::util::token`]), never a name the page sends.
#[component]
pub fn Chat(api: String, #[prop(optional)] voice: bool) -> impl IntoView {
    let entries = RwSignal::new(Vec::<Entry>::new());
    let voice_ui = VoiceUi::new();
    let spoken = RwSignal::new(None::<RwSignal<String>>);
    Effect::new(move |_| {
        let heard = voice_ui.transcript.get();
        if heard.is_empty() {
            return;
        }
        let answer = RwSignal::new(String::new());
        entries.update(|e| {
            for (who, text) in [("you", RwSignal::new(heard)), ("axon", answer)] {
                e.push(Entry {
                    who,
                    text,
                    chips: RwSignal::new(Vec::new()),
                });
            }
        });
        spoken.set(Some(answer));
    });
    Effect::new(move |_| {
        let said = voice_ui.answer.get();
        if let Some(entry) = spoken.get_untracked() {
            if !said.is_empty() {
                entry.set(said);
            }
        }
    });
    let voice_panel = voice.then(|| {
        view! { <VoicePanel ui=voice_ui api=api.clone() volume=Signal::stored(80) /> }
    });
    let input = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let pending = RwSignal::new(None::<Pending>);
    let api_send = api.clone();
    let send = move || {
        let text = input.get_untracked().trim().to_string();
        if text.is_empty() || busy.get_untracked() {
            return;
        }
        input.set(String::new());
        busy.set(true);
        entries.update(|e| {
            e.push(Entry {
                who: "you",
                text: RwSignal::new(text.clone()),
                chips: RwSignal::new(Vec::new()),
            })
        });
        let answer = Entry {
            who: "axon",
            text: RwSignal::new(String::new()),
            chips: RwSignal::new(Vec::new()),
        };
        entries.update(|e| e.push(answer.clone()));
        let url = format!("{api_send}/api/chat");
        let body = object(&[("text", JsValue::from_str(&text))]);
        leptos::task::spawn_local(async move {
            let outcome = post_sse(&url, &body, |event, data| match event {
                "text_delta" => answer
                    .text
                    .update(|t| t.push_str(&data.get("text").str_or_empty())),
                "answer" => answer.text.set(data.get("text").str_or_empty()),
                "tool_started" => answer.chips.update(|c| {
                    c.push(Chip {
                        id: data.get("id").str_or_empty(),
                        label: format!(
                            "{}.{}",
                            data.get("device").str_or_empty(),
                            data.get("tool").str_or_empty()
                        ),
                        state: "running".into(),
                    })
                }),
                "tool_finished" => {
                    let id = data.get("id").str_or_empty();
                    let state = if data.get("ok").as_bool() == Some(true) {
                        // Whole milliseconds: an integer's formatting, not a float's.
                        let ms = data.get("ms").as_f64().unwrap_or(0.0).max(0.0).round() as u64;
                        format!("{ms} ms")
                    } else {
                        data.at(&["error", "message"])
                            .as_str()
                            .unwrap_or_else(|| "failed".into())
                    };
                    answer
                        .chips
                        .update(|c| match c.iter_mut().find(|c| c.id == id) {
                            Some(chip) => chip.state = state,
                            None => c.push(Chip {
                                id,
                                label: format!(
                                    "{}.{}",
                                    data.get("device").str_or_empty(),
                                    data.get("tool").str_or_empty()
                                ),
                                state,
                            }),
                        });
                }
                "confirmation_required" => pending.set(Some(Pending {
                    id: data.get("id").str_or_empty(),
                    prompt: data.get("prompt").str_or_empty(),
                })),
                "error" => answer
                    .text
                    .update(|t| t.push_str(&format!(" ⚠ {}", data.get("message").str_or_empty()))),
                _ => {}
            })
            .await;
            if let Err(e) = outcome {
                answer.text.set(format!("⚠ {e}"));
            }
            pending.set(None);
            busy.set(false);
        });
    };
    let api_confirm = StoredValue::new(api.clone());
    let answer_confirmation = move |approve: bool| {
        let Some(p) = pending.get_untracked() else {
            return;
        };
        pending.set(None);
        let url = format!("{}/api/confirm", api_confirm.get_value());
        leptos::task::spawn_local(async move {
            let body = object(&[
                ("id", JsValue::from_str(&p.id)),
                ("approve", JsValue::from_bool(approve)),
            ]);
            let _ = fetch_json("POST", &url, Some(&body)).await;
        });
    };
    view! {
        <section class="chat" aria-label="Chat with the agent" data-testid="chat">
            <ol class="messages" aria-live="polite" data-testid="messages">
                <For each=move || entries.get().into_iter().enumerate() key=|(i, _)| *i let:item>
                    <li class=format!("msg {}", item.1.who) data-testid=format!("msg-{}", item.1.who)>
                        <span class="text">{move || item.1.text.get()}</span>
                        <span class="chips">
                            <For each=move || item.1.chips.get() key=|c| (c.id.clone(), c.state.clone()) let:chip>
                                <span class="chip" data-testid="tool-chip" title=chip.state.clone()>
                                    {chip.label.clone()} " · " {chip.state.clone()}
                                </span>
                            </For>
                        </span>
                    </li>
                </For>
            </ol>
            <Show when=move || pending.get().is_some()>
                <div role="alertdialog" aria-modal="true" aria-labelledby="confirm-title" class="confirm" data-testid="confirm-dialog">
                    <p id="confirm-title">{move || pending.get().map(|p| p.prompt).unwrap_or_default()}</p>
                    <button data-testid="confirm-yes" on:click=move |_| answer_confirmation(true)>"Allow"</button>
                    <button data-testid="confirm-no" on:click=move |_| answer_confirmation(false)>"Deny"</button>
                </div>
            </Show>
            {voice_panel}
            <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
                <label for="chat-input" class="visually-hidden">"Message"</label>
                <input
                    id="chat-input"
                    data-testid="chat-input"
                    placeholder="Turn on the kitchen lamp…"
                    autocomplete="off"
                    prop:value=move || input.get()
                    on:input=move |ev| input.set(event_target_value(&ev))
                />
                <button type="submit" data-testid="chat-send" disabled=move || busy.get()>
                    "Send"
                </button>
            </form>
        </section>
    }
}
