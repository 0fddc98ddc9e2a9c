//! The console (`/`): devices by room with live state, each device's tools with a form made
//! from its input schema, live telemetry plots, device events and chat with the agent; for the
//! owner, pairing a device by its code, the paired devices (revoke) and the activity log.
//! A big site stays usable (docs/scale.md §3): a search over names, ids, rooms and kinds; rooms
//! that start closed past 60 devices; a room of more than 100 drawn a screenful at a time; and
//! one reload of the registry at a time however many presence events arrive.
//!
//! Owns presentation and the browser side of the worker's API (`/api/session`,
//! `/api/devices`, `/api/events`, `/api/devices/{id}/tools/{tool}`, `/api/pair/approve`,
//! `/api/paired`, `/api/activity`). Arguments are checked with `axon-core`'s validator before
//! anything is sent, so a wrong value shows a field error and nothing leaves the page. It signs
//! in once with the owner token (`POST /api/session`), whose HttpOnly cookie then goes with
//! every request; it never keeps the token, and asks the worker for nothing else until then.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde_json::{Map, Value};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

use crate::chat::Chat;
use crate::json::object;
use crate::plot;
use crate::util::fetch_text;

/// Fetches JSON as serde_json values, which the console's device views and generated forms read
/// (the widget reads JSON through the browser instead: `crate::json`).
async fn fetch_json(method: &str, url: &str, body: Option<&str>) -> Result<(u16, Value), String> {
    let (status, text) = fetch_text(method, url, body).await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Points kept per metric for the plots.
const PLOT_POINTS: usize = 120;

#[derive(Clone, Debug, PartialEq)]
struct DeviceRow {
    id: String,
    title: String,
    room: String,
    kind: String,
    state: String,
    tools: Vec<Value>,
}

fn rows(list: &Value) -> Vec<DeviceRow> {
    let mut out: Vec<DeviceRow> = list["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| DeviceRow {
            id: d["device_id"].as_str().unwrap_or_default().into(),
            title: d["meta"]["title"]
                .as_str()
                .or_else(|| d["device_id"].as_str())
                .unwrap_or_default()
                .into(),
            room: d["meta"]["room"].as_str().unwrap_or("no room").into(),
            kind: d["kind"].as_str().unwrap_or_default().into(),
            state: d["state"].as_str().unwrap_or("unknown").into(),
            tools: d["tools"].as_array().cloned().unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| (&a.room, &a.title).cmp(&(&b.room, &b.title)));
    out
}

/// One metric's points, and whether its samples were booleans (drawn as steps).
#[derive(Clone, Debug, Default, PartialEq)]
struct MetricPoints {
    boolean: bool,
    points: Vec<(u64, f64)>,
}

type Series = BTreeMap<String, MetricPoints>;

fn add_sample(plots: &mut BTreeMap<String, Series>, device: &str, ts: u64, metrics: &Value) {
    let series = plots.entry(device.to_string()).or_default();
    for (name, v) in metrics.as_object().into_iter().flatten() {
        let y = match v {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        };
        if let Some(y) = y {
            let m = series.entry(name.clone()).or_default();
            m.boolean = v.is_boolean();
            if m.points.last().is_none_or(|(t, _)| *t < ts) {
                m.points.push((ts, y));
            }
            if m.points.len() > PLOT_POINTS {
                m.points.remove(0);
            }
        }
    }
}

/// An SVG chart of one metric: a time axis back from the newest sample, the lowest and
/// highest values with the unit, and steps for an on/off metric (geometry in [`crate::plot`]).
#[component]
fn Plot(name: String, metric: MetricPoints) -> impl IntoView {
    let g = plot::geometry(&name, &metric.points, metric.boolean);
    let n = metric.points.len();
    let words = axon_core::protocol::telemetry::MetricKey::parse(&name).words();
    view! {
        <figure class="plot" data-testid="plot" data-metric=name.clone() data-points=n.to_string()>
            <figcaption>{words.clone()} ": " <b>{g.last.clone()}</b> <small>{format!(" ({n} points)")}</small></figcaption>
            <svg viewBox=plot::Geometry::view_box() role="img" aria-label=format!("{words} over time") inner_html=g.svg()></svg>
        </figure>
    }
}

/// A form for one tool, generated from its input schema.
#[component]
fn ToolForm(device: String, tool: Value) -> impl IntoView {
    let name = tool["name"].as_str().unwrap_or_default().to_string();
    let title = tool["title"].as_str().unwrap_or(&name).to_string();
    let schema = tool["inputSchema"].clone();
    let props: Vec<(String, Value)> = schema["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let values = RwSignal::new(BTreeMap::<String, String>::new());
    let error = RwSignal::new(None::<(String, String)>);
    let result = RwSignal::new(String::new());
    let form_id = format!("{device}-{name}");
    let (dev, tname, sch) = (device.clone(), name.clone(), schema.clone());
    let props_submit = props.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut args = Map::new();
        for (k, p) in &props_submit {
            let raw = values.get_untracked().get(k).cloned().unwrap_or_default();
            let v = match p["type"].as_str() {
                Some("boolean") => Some(Value::Bool(raw == "true")),
                Some("integer") if !raw.is_empty() => Some(
                    raw.parse::<i64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(raw.clone())),
                ),
                Some("number") if !raw.is_empty() => Some(
                    raw.parse::<f64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(raw.clone())),
                ),
                _ if raw.is_empty() => None,
                _ => Some(Value::String(raw.clone())),
            };
            if let Some(v) = v {
                args.insert(k.clone(), v);
            }
        }
        let args = Value::Object(args);
        if let Err(e) = axon_core::protocol::tool::validate_arguments(&sch, &args) {
            error.set(Some((e.field.clone(), e.to_string())));
            return;
        }
        error.set(None);
        result.set("…".into());
        let url = format!("/api/devices/{dev}/tools/{tname}");
        leptos::task::spawn_local(async move {
            let text = match fetch_json("POST", &url, Some(&args.to_string())).await {
                Ok((200, v)) => v
                    .get("structuredContent")
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| v.to_string()),
                Ok((status, v)) => format!(
                    "HTTP {status}: {}",
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
                Err(e) => e,
            };
            result.set(text);
        });
    };
    let fields = props
        .into_iter()
        .map(|(k, p)| {
            let id = format!("{form_id}-{k}");
            let key = k.clone();
            let set = move |v: String| values.update(|m| {
                m.insert(key.clone(), v);
            });
            let input = if let Some(options) = p["enum"].as_array() {
                let set = set.clone();
                let opts: Vec<String> = options.iter().filter_map(|o| o.as_str().map(str::to_string)).collect();
                if let Some(first) = opts.first() {
                    set(first.clone());
                }
                view! {
                    <select id=id.clone() data-testid=format!("field-{k}") on:change=move |ev| set(event_target_value(&ev))>
                        {opts.into_iter().map(|o| view! { <option value=o.clone()>{o.clone()}</option> }).collect_view()}
                    </select>
                }
                .into_any()
            } else if p["type"] == "boolean" {
                let set = set.clone();
                set("false".into());
                view! {
                    <input type="checkbox" id=id.clone() data-testid=format!("field-{k}")
                        on:change=move |ev| {
                            let checked = event_target::<web_sys::HtmlInputElement>(&ev).checked();
                            set(checked.to_string())
                        } />
                }
                .into_any()
            } else {
                let kind = if p["type"] == "integer" || p["type"] == "number" { "number" } else { "text" };
                view! {
                    <input type=kind id=id.clone() data-testid=format!("field-{k}")
                        on:input=move |ev| set(event_target_value(&ev)) />
                }
                .into_any()
            };
            let field = k.clone();
            let hint = [
                p["minimum"].is_number().then(|| format!("min {}", p["minimum"])),
                p["maximum"].is_number().then(|| format!("max {}", p["maximum"])),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            view! {
                <div class="field">
                    <label for=id.clone()>{k.clone()} <small>{hint}</small></label>
                    {input}
                    <Show when=move || error.get().is_some_and(|(f, _)| f == format!("arguments.{field}"))>
                        <span class="field-error" role="alert" data-testid="field-error">
                            {move || error.get().map(|(_, m)| m).unwrap_or_default()}
                        </span>
                    </Show>
                </div>
            }
        })
        .collect_view();
    view! {
        <form class="tool" on:submit=submit data-testid=format!("tool-{name}") aria-label=title.clone()>
            <h4>{title.clone()}</h4>
            {fields}
            <Show when=move || error.get().is_some_and(|(f, _)| f == "arguments")>
                <span class="field-error" role="alert" data-testid="field-error">{move || error.get().map(|(_, m)| m).unwrap_or_default()}</span>
            </Show>
            <button type="submit" data-testid=format!("call-{name}")>"Call"</button>
            <output data-testid=format!("result-{name}")>{move || result.get()}</output>
        </form>
    }
}

/// The worker's message in a refusal (`error.message`), or the status.
fn refusal(status: u16, v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// Reloads the page (after signing in or out: the page starts again as what it now is).
fn reload() {
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
}

/// Mounts the console into `el` once the worker says whether this browser has a session
/// (`GET /api/session`): the console, else the sign-in form. Before that the page asks the
/// worker for nothing else. Deciding before mounting, not in a reactive branch or by hiding the
/// console's markup, is the cheaper of the three (0.9 and 5 KB less of the page).
pub fn mount(el: web_sys::HtmlElement) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok((200, _)) = fetch_text("GET", "/api/session", None).await {
            leptos::mount::mount_to(el, ConsolePage).forget();
        } else {
            leptos::mount::mount_to(el, SignIn).forget();
        }
    });
}

/// One password field for the owner token: `POST /api/session`, which sets the cookie, then
/// the page starts again, signed in.
#[component]
fn SignIn() -> impl IntoView {
    let token = RwSignal::new(String::new());
    let error = RwSignal::new(String::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = object(&[("token", token.get_untracked().into())]);
        leptos::task::spawn_local(async move {
            match fetch_json("POST", "/api/session", Some(&body)).await {
                Ok((200, _)) => reload(),
                Ok((status, v)) => error.set(refusal(status, &v)),
                Err(e) => error.set(e),
            }
        });
    };
    view! {
        <main class="sign-in">
            <h1>"Axon console"</h1>
            <form on:submit=submit data-testid="sign-in">
                <label for="owner-token">"Owner token"</label>
                <input id="owner-token" type="password" autocomplete="current-password" data-testid="owner-token"
                    on:input=move |ev| token.set(event_target_value(&ev)) />
                <button type="submit" data-testid="sign-in-button">"Sign in"</button>
                <p class="field-error" role="alert" data-testid="sign-in-error">{move || error.get()}</p>
            </form>
        </main>
    }
}

/// `text` safe inside HTML markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The list items of `/api/paired` (each with its revoke button) or `/api/activity` (time, who,
/// device.tool, outcome), as markup: one `inner_html` binding per list instead of a view per
/// row, which keeps the console within its size goal (docs/web-size.md).
fn items(v: &Value) -> String {
    let mut html = String::new();
    for d in v["paired"].as_array().into_iter().flatten() {
        let id = escape(d.as_str().unwrap_or_default());
        html.push_str(&format!(
            r#"<li>{id} <button type="button" data-revoke="{id}" data-testid="revoke-{id}">Revoke</button></li>"#
        ));
    }
    for a in v["activity"].as_array().into_iter().flatten() {
        let at = js_sys::Date::new(&a["ts"].as_f64().unwrap_or_default().into())
            .to_locale_time_string("en-GB");
        let s = |k: &str| escape(a[k].as_str().unwrap_or_default());
        html.push_str(&format!(
            "<li>{} {} <b>{}.{}</b> {}</li>",
            String::from(at),
            s("who"),
            s("device"),
            s("tool"),
            s("outcome")
        ));
    }
    html
}

/// The owner's side panel: pair a device by its code, the paired devices (revoke), and the
/// activity log, newest first.
#[component]
fn Owner() -> impl IntoView {
    let code = RwSignal::new(String::new());
    let outcome = RwSignal::new(String::new());
    let paired = RwSignal::new(String::new());
    let activity = RwSignal::new(String::new());
    let load = move || {
        leptos::task::spawn_local(async move {
            for (url, list) in [
                ("/api/paired", paired),
                ("/api/activity?limit=50", activity),
            ] {
                match fetch_json("GET", url, None).await {
                    Ok((200, v)) => list.set(items(&v)),
                    Ok((status, v)) => outcome.set(refusal(status, &v)),
                    Err(e) => outcome.set(e),
                }
            }
        })
    };
    load();
    // Approve or revoke, then show the answer and reload the lists.
    let act = move |method: &'static str, url: String, body: Option<String>| {
        outcome.set("…".into());
        leptos::task::spawn_local(async move {
            outcome.set(match fetch_json(method, &url, body.as_deref()).await {
                Ok((200, v)) if v["paired"] == true => {
                    format!("paired {}", v["device"].as_str().unwrap_or_default())
                }
                Ok((200, v)) => format!("revoked {}", v["device"].as_str().unwrap_or_default()),
                Ok((status, v)) => refusal(status, &v),
                Err(e) => e,
            });
            load();
        })
    };
    let approve = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = object(&[("code", code.get_untracked().into())]);
        act("POST", "/api/pair/approve".into(), Some(body));
    };
    // One handler for the list's revoke buttons.
    let revoke = move |ev: leptos::ev::MouseEvent| {
        let id = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.get_attribute("data-revoke"));
        if let Some(id) = id {
            act("DELETE", format!("/api/paired/{id}"), None);
        }
    };
    view! {
        <form class="pair" on:submit=approve data-testid="pair">
            <h3><label for="pair-code">"Pair a device"</label></h3>
            <input id="pair-code" placeholder="7KQ3-M9ZD" autocomplete="off" data-testid="pair-input"
                on:input=move |ev| code.set(event_target_value(&ev)) />
            <button type="submit" data-testid="pair-approve">"Pair"</button>
            <output data-testid="pair-outcome">{move || outcome.get()}</output>
        </form>
        <h3>"Paired devices"</h3>
        <ul class="paired" data-testid="paired" on:click=revoke inner_html=move || paired.get()></ul>
        <h3>"Activity " <button type="button" data-testid="activity-refresh" on:click=move |_| load()>"↻"</button></h3>
        <ul class="events" data-testid="activity" inner_html=move || activity.get()></ul>
    }
}

/// Up to this many devices on the list, every room starts open; past it they start closed
/// and the person opens the one they want, or searches (docs/scale.md §3).
const SMALL_LIST: usize = 60;
/// Rooms of more devices than this scroll in a box that draws only the rows in view.
const VIRTUAL_FROM: usize = 100;
/// A row's height in that box (px; console.css `.rows li`).
const ROW_PX: usize = 36;
/// Rows the box shows at once.
const ROWS_IN_VIEW: usize = 12;
/// Rows drawn above and below the visible ones, so a fast scroll shows no gap.
const OVERSCAN: usize = 6;
/// The pause between two reloads of the registry while presence keeps coming.
const REFRESH_PAUSE_MS: u32 = 250;

/// Whether a device matches a search (`query` lower-case): by name, id, room or kind. Case is
/// folded for ASCII letters only: Unicode's case tables cost the console 7.5 KB of wasm.
fn matches(d: &DeviceRow, query: &str) -> bool {
    query.is_empty()
        || [&d.title, &d.id, &d.room, &d.kind]
            .iter()
            .any(|f| f.to_ascii_lowercase().contains(query))
}

/// Whether a room starts open: on a short list, or when a search found the devices.
fn open_by_default(shown: usize, searching: bool) -> bool {
    shown <= SMALL_LIST || (searching && shown <= VIRTUAL_FROM)
}

/// The rows a virtualised box of `rows` draws when scrolled to `scroll_top` px: `start..end`.
fn rows_in_view(rows: usize, scroll_top: usize) -> std::ops::Range<usize> {
    let first = scroll_top / ROW_PX;
    let start = first.saturating_sub(OVERSCAN).min(rows);
    let end = (first + ROWS_IN_VIEW + OVERSCAN).min(rows);
    start..end
}

/// The list's markup for `list[range]`: one button a device, `data-device` naming it for the
/// list's one click handler. Markup, not a view a row: a view and two closures a button cost the
/// console 14 KB of wasm, and a big room redraws its rows on every scroll step.
fn rows_html(
    list: &[DeviceRow],
    range: std::ops::Range<usize>,
    selected: Option<&str>,
    positioned: bool,
) -> String {
    let mut html = String::new();
    for (d, i) in list[range.clone()].iter().zip(range) {
        let (id, state) = (escape(&d.id), escape(&d.state));
        let top = if positioned {
            format!(r#" style="top:{}px""#, i * ROW_PX)
        } else {
            String::new()
        };
        html.push_str(&format!(
            r#"<li{top}><button type="button" class="device {state}" data-testid="device-{id}" data-device="{id}" data-state="{state}" aria-pressed="{}"><span class="dot" aria-hidden="true"></span>{} <small> {} · {state}</small></button></li>"#,
            selected == Some(d.id.as_str()),
            escape(&d.title),
            escape(&d.kind),
        ));
    }
    html
}

/// A room on the list: its name and count, open or closed; a closed room draws none of its
/// devices, and a big one draws only the rows in view.
#[component]
fn Room(
    room: String,
    list: Vec<DeviceRow>,
    open: bool,
    selected: RwSignal<Option<String>>,
) -> impl IntoView {
    let n = list.len();
    let list = std::sync::Arc::new(list);
    let (label, box_id, summary_room) = (room.clone(), format!("rows-{room}"), room.clone());
    let body = if !open {
        None
    } else if n <= VIRTUAL_FROM {
        Some(
            view! { <ul inner_html=move || rows_html(&list, 0..n, selected.get().as_deref(), false)></ul> }
                .into_any(),
        )
    } else {
        let top = RwSignal::new(0usize);
        let on_scroll = move |ev: web_sys::Event| {
            if let Some(e) = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            {
                top.set(usize::try_from(e.scroll_top()).unwrap_or(0));
            }
        };
        Some(
            view! {
                <div class="rows" data-testid=box_id on:scroll=on_scroll
                    style=format!("height:{}px", ROWS_IN_VIEW * ROW_PX)>
                    <ul style=format!("height:{}px", n * ROW_PX) inner_html=move || {
                        rows_html(&list, rows_in_view(n, top.get()), selected.get().as_deref(), true)
                    }></ul>
                </div>
            }
            .into_any(),
        )
    };
    view! {
        <details class="room" open=open data-room=room>
            <summary data-room=summary_room><h2>{label} <small>{format!(" {n}")}</small></h2></summary>
            {body}
        </details>
    }
}

/// The list's one click handler: a device button selects its device; a room's summary opens or
/// closes the room (recorded, so that the next redraw keeps it).
fn on_list_click(
    ev: web_sys::MouseEvent,
    selected: RwSignal<Option<String>>,
    opened: RwSignal<BTreeMap<String, bool>>,
) {
    let Some(target) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    else {
        return;
    };
    if let Some(id) = target
        .closest("[data-device]")
        .ok()
        .flatten()
        .and_then(|b| b.get_attribute("data-device"))
    {
        selected.set(Some(id));
        return;
    }
    let summary = target.closest("summary[data-room]").ok().flatten();
    let details = summary.as_ref().and_then(|s| s.parent_element());
    if let (Some(summary), Some(details)) = (summary, details) {
        // The redraw opens or closes it; the browser's own toggle would be undone by it.
        ev.prevent_default();
        let room = summary.get_attribute("data-room").unwrap_or_default();
        let now_open = details.has_attribute("open");
        opened.update(|o| {
            o.insert(room, !now_open);
        });
    }
}

/// The console, signed in.
#[component]
pub fn ConsolePage() -> impl IntoView {
    let devices = RwSignal::new(Vec::<DeviceRow>::new());
    let selected = RwSignal::new(None::<String>);
    let plots = RwSignal::new(BTreeMap::<String, Series>::new());
    let events = RwSignal::new(Vec::<String>::new());
    let live = RwSignal::new("connecting".to_string());
    // One reload of the registry at a time; asks that come meanwhile make one more after it
    // (a big site's discovery sends thousands of presence events: each used to reload it all).
    let loading = std::rc::Rc::new(std::cell::Cell::new(false));
    let again = std::rc::Rc::new(std::cell::Cell::new(false));
    let refresh = move || {
        if loading.replace(true) {
            again.set(true);
            return;
        }
        let (loading, again) = (loading.clone(), again.clone());
        leptos::task::spawn_local(async move {
            loop {
                again.set(false);
                // Every page of the registry (a big site has several; README "HTTP API"). The
                // first reload shows its first page at once; every reload then swaps in the
                // whole list (once: each swap copies and regroups it).
                let mut show_first = devices.with_untracked(Vec::is_empty);
                let mut all = Vec::new();
                let mut url = "/api/devices".to_string();
                while let Ok((200, v)) = fetch_json("GET", &url, None).await {
                    all.extend(rows(&v));
                    let next = v["next"].as_str();
                    if show_first || next.is_none() {
                        all.sort_by(|a, b| (&a.room, &a.title).cmp(&(&b.room, &b.title)));
                        devices.set(all.clone());
                        show_first = false;
                    }
                    let Some(next) = next else { break };
                    url = "/api/devices?after=".to_string() + next;
                }
                if !again.get() {
                    break;
                }
                // Presence comes in bursts: let one settle before reading again.
                crate::util::sleep(REFRESH_PAUSE_MS).await;
            }
            loading.set(false);
        })
    };
    let refresh = std::rc::Rc::new(refresh);
    refresh();
    let search = RwSignal::new(String::new());
    // Rooms the person opened or closed; the others follow the site's size.
    let opened = RwSignal::new(BTreeMap::<String, bool>::new());
    // Live updates.
    if let Ok(es) = web_sys::EventSource::new("/api/events") {
        let on = |name: &str, f: Box<dyn Fn(Value)>| {
            let cb =
                Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |m: web_sys::MessageEvent| {
                    let data = m.data().as_string().unwrap_or_default();
                    f(serde_json::from_str(&data).unwrap_or(Value::Null));
                });
            let _ = es.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
            cb.forget();
        };
        on("hello", Box::new(move |_| live.set("live".into())));
        let reload = refresh.clone();
        on("presence", Box::new(move |_| reload()));
        on(
            "telemetry",
            Box::new(move |v| {
                // Only the device on show is plotted: a site of 10,000 sends thousands of
                // samples a second, and keeping them all hung the page (docs/scale.md §3).
                let device = v["device"].as_str().unwrap_or_default();
                if selected.with_untracked(|s| s.as_deref() == Some(device)) {
                    let ts = v["ts"].as_u64().unwrap_or_default();
                    plots.update(|p| add_sample(p, device, ts, &v["metrics"]));
                }
            }),
        );
        let push = move |line: String| {
            events.update(|e| {
                e.insert(0, line);
                e.truncate(30);
            })
        };
        on(
            "device_event",
            Box::new(move |v| {
                push(format!(
                    "{}: {} ({})",
                    v["device"].as_str().unwrap_or_default(),
                    v["event"]["message"].as_str().unwrap_or_default(),
                    v["event"]["severity"].as_str().unwrap_or_default()
                ))
            }),
        );
        on(
            "agent_notice",
            Box::new(move |v| push(v["text"].as_str().unwrap_or_default().to_string())),
        );
        let err = Closure::<dyn Fn(web_sys::Event)>::new(move |_| live.set("reconnecting".into()));
        es.set_onerror(Some(err.as_ref().unchecked_ref()));
        err.forget();
    }
    // Seed the plots from the Hub's window when a device is selected.
    Effect::new(move |_| {
        if let Some(id) = selected.get() {
            plots.update(|p| p.retain(|d, _| *d == id));
            leptos::task::spawn_local(async move {
                if let Ok((200, v)) = fetch_json("GET", &format!("/api/devices/{id}"), None).await {
                    plots.update(|p| {
                        for s in v["telemetry"].as_array().into_iter().flatten() {
                            add_sample(p, &id, s["ts"].as_u64().unwrap_or_default(), &s["metrics"]);
                        }
                    });
                }
            });
        }
    });
    // A memo: the list and the "no match" line share one grouping of the site's devices.
    let rooms = Memo::new(move |_| {
        let query = search.get().trim().to_ascii_lowercase();
        let mut by_room: BTreeMap<String, Vec<DeviceRow>> = BTreeMap::new();
        devices.with(|all| {
            for d in all.iter().filter(|d| matches(d, &query)) {
                by_room.entry(d.room.clone()).or_default().push(d.clone());
            }
        });
        by_room.into_iter().collect::<Vec<_>>()
    });
    let nothing_found = move || {
        !devices.with(Vec::is_empty) && rooms.with(|r| r.iter().all(|(_, list)| list.is_empty()))
    };
    // A memo: the detail (and what is typed into its forms) is redrawn when its own device
    // changes, not on every reload of the registry.
    let detail = Memo::new(move |_| {
        let id = selected.get()?;
        devices.with(|all| all.iter().find(|d| d.id == id).cloned())
    });
    view! {
        <main class="console">
            <header>
                <h1>"Axon console"</h1>
                <span class="live" data-testid="live" role="status">{move || live.get()}</span>
                <button type="button" data-testid="sign-out" on:click=move |_| {
                    leptos::task::spawn_local(async {
                        let _ = fetch_text("DELETE", "/api/session", None).await;
                        reload();
                    })
                }>"Sign out"</button>
            </header>
            <nav class="devices" aria-label="Devices" data-testid="devices"
                data-count=move || devices.with(Vec::len).to_string()
                on:click=move |ev| on_list_click(ev, selected, opened)>
                <input type="search" class="search" placeholder="Search devices: name, room, kind"
                    aria-label="Search devices" data-testid="search-devices"
                    on:input=move |ev| search.set(event_target_value(&ev)) />
                {move || {
                    let groups = rooms.get();
                    let total = groups.iter().map(|g| g.1.len()).sum::<usize>();
                    let searching = !search.get().trim().is_empty();
                    groups.into_iter().map(|(room, list)| {
                        let open = opened.get().get(&room).copied()
                            .unwrap_or_else(|| open_by_default(total, searching));
                        view! { <Room room=room list=list open=open selected=selected /> }
                    }).collect_view()
                }}
                <p class="none" hidden=move || !nothing_found()>"No device matches."</p>
            </nav>
            <section class="detail" aria-live="polite">
                {move || match detail.get() {
                    None => view! { <p>"Pick a device to see its tools and telemetry."</p> }.into_any(),
                    Some(d) => {
                        let id = d.id.clone();
                        let id_plots = id.clone();
                        view! {
                            <h3 data-testid="detail-title">{d.title.clone()}</h3>
                            <div class="plots" data-testid="plots">
                                {move || plots.with(|p| p.get(&id_plots).cloned()).unwrap_or_default().into_iter()
                                    .map(|(name, metric)| view! { <Plot name=name metric=metric /> }).collect_view()}
                            </div>
                            <div class="tools">
                                {d.tools.into_iter().map(|t| view! { <ToolForm device=id.clone() tool=t /> }).collect_view()}
                            </div>
                        }.into_any()
                    }
                }}
            </section>
            <aside class="side">
                <Chat api=String::new() />
                <h3>"Device events"</h3>
                <ul class="events" data-testid="events">
                    {move || events.get().into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}
                </ul>
                <Owner />
            </aside>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::{items, matches, open_by_default, rows_in_view, DeviceRow, OVERSCAN, ROW_PX};
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn paired_devices_carry_their_revoke_button() {
        assert_eq!(
            items(&json!({"paired": ["tab-1"]})),
            r#"<li>tab-1 <button type="button" data-revoke="tab-1" data-testid="revoke-tab-1">Revoke</button></li>"#
        );
    }

    #[wasm_bindgen_test]
    fn activity_lines_are_escaped_markup() {
        let html = items(&json!({"activity": [{
            "ts": 0, "who": "widget:https://x.example\"><script>", "via": "agent",
            "device": "lamp", "tool": "set_power", "outcome": "refused", "detail": ""
        }]}));
        assert!(
            html.contains(
                " widget:https://x.example&quot;>&lt;script> <b>lamp.set_power</b> refused</li>"
            ),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
    }

    fn lamp(id: &str, title: &str, room: &str) -> DeviceRow {
        DeviceRow {
            id: id.into(),
            title: title.into(),
            room: room.into(),
            kind: "lamp".into(),
            state: "ready".into(),
            tools: vec![],
        }
    }

    #[wasm_bindgen_test]
    fn a_search_finds_devices_by_name_id_room_or_kind() {
        let d = lamp("scale-1234", "Lamp 1234", "no room");
        for q in ["", "lamp 1234", "scale-12", "no room", "lamp"] {
            assert!(matches(&d, q), "{q}");
        }
        assert!(!matches(&d, "kitchen"));
        assert!(!matches(&d, "lamp 12345"));
    }

    #[wasm_bindgen_test]
    fn rooms_start_open_only_on_a_short_list() {
        assert!(open_by_default(13, false));
        assert!(!open_by_default(10_013, false));
        assert!(
            open_by_default(1, true),
            "a search that found one device shows it"
        );
        assert!(!open_by_default(1000, true));
    }

    #[wasm_bindgen_test]
    fn a_big_room_draws_the_rows_in_view_and_a_few_around_them() {
        assert_eq!(rows_in_view(10_000, 0), 0..18);
        let r = rows_in_view(10_000, 5000 * ROW_PX);
        assert_eq!(r, 5000 - OVERSCAN..5018);
        assert_eq!(rows_in_view(10_000, 10_000 * ROW_PX), 9994..10_000);
        assert_eq!(rows_in_view(3, 0), 0..3);
    }
}
