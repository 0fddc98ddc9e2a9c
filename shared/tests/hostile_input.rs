//! Hostile input: random bytes, strings and JSON into every parser. Never a panic; every
//! failure carries a message.

use axon_core::protocol::jsonrpc;
use axon_core::protocol::mcp::topics::Topic;
use axon_core::protocol::telemetry::{DeviceEvent, Telemetry};
use axon_core::protocol::tool::validate_arguments;
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::String),
        prop_oneof![
            Just("type"),
            Just("object"),
            Just("integer"),
            Just("minimum"),
            Just("enum")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("properties".to_string()),
                    Just("required".to_string()),
                    Just("items".to_string()),
                    Just("minimum".to_string()),
                    Just("maxLength".to_string()),
                    Just("additionalProperties".to_string()),
                    Just("enum".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn jsonrpc_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(f) = jsonrpc::parse(&bytes) {
            prop_assert!(!f.error.message.is_empty());
        }
    }

    #[test]
    fn jsonrpc_parse_never_panics_on_json(v in json_value()) {
        if let Err(f) = jsonrpc::parse(v.to_string().as_bytes()) {
            prop_assert!(!f.error.message.is_empty());
        }
    }

    #[test]
    fn topic_parse_never_panics(s in "[$a-z/+#-]{0,64}") {
        let _ = Topic::parse(&s);
    }

    #[test]
    fn telemetry_and_events_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), v in json_value()) {
        for input in [bytes, v.to_string().into_bytes()] {
            if let Err(e) = Telemetry::parse(&input) { prop_assert!(!e.to_string().is_empty()); }
            if let Err(e) = DeviceEvent::parse(&input) { prop_assert!(!e.to_string().is_empty()); }
        }
    }

    #[test]
    fn validation_never_panics(schema in json_value(), args in json_value()) {
        if let Err(e) = validate_arguments(&schema, &args) {
            prop_assert!(!e.reason.is_empty());
            prop_assert!(e.field.starts_with("arguments"));
        }
    }
}

proptest! {
    #[test]
    fn the_offline_planner_never_panics(text in "\\PC{0,80}") {
        let _ = axon_core::agent::planner::plan(&text, std::iter::empty());
    }
}
