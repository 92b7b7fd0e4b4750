//! docker-compose.yml says what README documents: an apache/kafka 4.x broker with the
//! two-listener pattern, and vigil built from the repository's Dockerfile, configured through
//! `VIGIL_*` variables that `vigil run` accepts.

use serde_yaml_ng::Value;

fn compose() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml")).expect("compose file");
    serde_yaml_ng::from_str(&text).expect("valid YAML")
}

fn env_of<'a>(svc: &'a Value, key: &str) -> &'a str {
    svc["environment"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing"))
}

#[test]
fn broker_uses_apache_kafka_4_with_two_listeners() {
    let c = compose();
    let broker = &c["services"]["broker"];
    let image = broker["image"].as_str().expect("image");
    assert!(image.starts_with("apache/kafka:4."), "{image}");
    let ports: Vec<&str> = broker["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ports.contains(&"9092:9092"), "host listener published: {ports:?}");
    let advertised = env_of(broker, "KAFKA_ADVERTISED_LISTENERS");
    assert!(advertised.contains("PLAINTEXT://broker:19092"), "{advertised}");
    assert!(advertised.contains("PLAINTEXT_HOST://localhost:9092"), "{advertised}");
    assert_eq!(
        broker["environment"]["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"].as_i64(),
        Some(0)
    );
    assert!(env_of(broker, "KAFKA_HEAP_OPTS").contains("-Xmx"));
}

#[test]
fn vigil_is_built_here_and_configured_by_env_that_run_accepts() {
    let c = compose();
    let vigil = &c["services"]["vigil"];
    assert_eq!(vigil["build"].as_str(), Some("."));
    assert!(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).exists());
    assert_eq!(
        env_of(vigil, "VIGIL_SOURCE__BROKERS"),
        "broker:19092",
        "containers use the inner listener"
    );
    // The environment the compose file sets is a valid `vigil run` configuration.
    let vars: Vec<(String, String)> = vigil["environment"]
        .as_mapping()
        .expect("environment map")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("key").to_string(),
                v.as_str().map(str::to_string).unwrap_or_else(|| format!("{v:?}")),
            )
        })
        .collect();
    let cfg = vigil::config::VigilConfig::parse("", vars).expect("compose env is a valid config");
    assert_eq!(cfg.source.brokers, "broker:19092");
    assert_eq!(cfg.source.topics, vec!["interactions".to_string()]);
    assert_eq!(cfg.source.dead_letter_topic, "interactions.dlq");
}
