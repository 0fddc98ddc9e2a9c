//! The console (`/`): devices by room with live state, each device's tools with a form made
//! from its input schema, live telemetry plots, device events and chat with the agent.
//!
//! Owns presentation and the browser side of the worker's API (`/api/devices`, `/api/events`,
//! `/api/devices/{id}/tools/{tool}`). Arguments are checked with `axon-core`'s validator before
//! anything is sent, so a wrong value shows a field error and nothing leaves the page.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde_json::{Map, Value};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

use crate::chat::Chat;
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

/// The console page.
#[component]
pub fn ConsolePage() -> impl IntoView {
    let devices = RwSignal::new(Vec::<DeviceRow>::new());
    let selected = RwSignal::new(None::<String>);
    let plots = RwSignal::new(BTreeMap::<String, Series>::new());
    let events = RwSignal::new(Vec::<String>::new());
    let live = RwSignal::new("connecting".to_string());
    let refresh = move || {
        leptos::task::spawn_local(async move {
            if let Ok((200, v)) = fetch_json("GET", "/api/devices", None).await {
                devices.set(rows(&v));
            }
        })
    };
    refresh();
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
        on("presence", Box::new(move |_| refresh()));
        on(
            "telemetry",
            Box::new(move |v| {
                let device = v["device"].as_str().unwrap_or_default().to_string();
                let ts = v["ts"].as_u64().unwrap_or_default();
                plots.update(|p| add_sample(p, &device, ts, &v["metrics"]));
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
    let rooms = move || {
        let mut by_room: BTreeMap<String, Vec<DeviceRow>> = BTreeMap::new();
        for d in devices.get() {
            by_room.entry(d.room.clone()).or_default().push(d);
        }
        by_room.into_iter().collect::<Vec<_>>()
    };
    let detail = move || {
        let id = selected.get()?;
        devices.get().into_iter().find(|d| d.id == id)
    };
    view! {
        <main class="console">
            <header>
                <h1>"Axon console"</h1>
                <span class="live" data-testid="live" role="status">{move || live.get()}</span>
            </header>
            <nav class="devices" aria-label="Devices" data-testid="devices">
                {move || rooms().into_iter().map(|group| view! {
                    <section class="room">
                        <h2>{group.0.clone()}</h2>
                        <ul>
                            {group.1.into_iter().map(|d| {
                                let id = d.id.clone();
                                let pick = id.clone();
                                view! {
                                    <li>
                                        <button class=format!("device {}", d.state) data-testid=format!("device-{id}")
                                            data-state=d.state.clone()
                                            aria-pressed=move || (selected.get().as_deref() == Some(id.as_str())).to_string()
                                            on:click=move |_| selected.set(Some(pick.clone()))>
                                            <span class="dot" aria-hidden="true"></span>
                                            {d.title.clone()} <small>{format!(" {} · {}", d.kind, d.state)}</small>
                                        </button>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    </section>
                }).collect_view()}
            </nav>
            <section class="detail" aria-live="polite">
                {move || match detail() {
                    None => view! { <p>"Pick a device to see its tools and telemetry."</p> }.into_any(),
                    Some(d) => {
                        let id = d.id.clone();
                        let id_plots = id.clone();
                        view! {
                            <h3 data-testid="detail-title">{d.title.clone()}</h3>
                            <div class="plots" data-testid="plots">
                                {move || plots.get().get(&id_plots).cloned().unwrap_or_default().into_iter()
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
                <Chat api=String::new() user="console".to_string() />
                <h3>"Device events"</h3>
                <ul class="events" data-testid="events">
                    {move || events.get().into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}
                </ul>
            </aside>
        </main>
    }
}
