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
    // Time and scoring as a new user gets them: the defaults that
    // `kafka::generate_run` checks end to end (nothing late, the quiet key account flagged).
    let defaults = vigil::config::VigilConfig::parse("", [("VIGIL_SOURCE__BROKERS".to_string(), "b:1".to_string())])
        .expect("defaults");
    assert_eq!(cfg.clock, defaults.clock, "the compose file runs the default clock");
    assert_eq!(
        cfg.scoring, defaults.scoring,
        "the compose file runs the default scoring"
    );
    assert_eq!(cfg.tick_ms, defaults.tick_ms);
}

#[test]
fn endpoints_are_published_and_the_generator_feeds_vigil() {
    let c = compose();
    let vigil = &c["services"]["vigil"];
    let ports: Vec<&str> = vigil["ports"]
        .as_sequence()
        .expect("vigil ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ports.contains(&"9464:9464"), "metrics published: {ports:?}");
    assert!(ports.contains(&"5433:5433"), "SQL published: {ports:?}");
    assert_eq!(env_of(vigil, "VIGIL_HTTP__LISTEN"), "0.0.0.0:9464");
    assert_eq!(env_of(vigil, "VIGIL_SQL__LISTEN"), "0.0.0.0:5433");
    let cmd: Vec<&str> = vigil["command"]
        .as_sequence()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(cmd, ["run", "--config", "/shared/accounts.toml"]);

    // The generator runs the `vigil generate` subcommand against the inner listener and writes
    // the accounts file vigil reads.
    let generator = &c["services"]["generator"];
    assert_eq!(generator["build"].as_str(), Some("."));
    assert_eq!(env_of(generator, "VIGIL_SOURCE__BROKERS"), "broker:19092");
    let args: Vec<&str> = generator["command"]
        .as_sequence()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args[0], "generate");
    let out = args
        .iter()
        .position(|a| *a == "--accounts-out")
        .map(|i| args[i + 1])
        .expect("--accounts-out");
    assert_eq!(out, cmd[2], "vigil reads what the generator writes");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["generate", "--help"])
        .output()
        .expect("vigil generate --help");
    assert!(out.status.success(), "the generator's subcommand exists");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--topic", "--accounts", "--replay-secs", "--accounts-out", "--brokers"] {
        assert!(help.contains(flag), "{flag} documented");
    }
}
