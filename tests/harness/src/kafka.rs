//! A real single-node Apache Kafka 4.x broker (KRaft, combined mode) started from Maven
//! Central jars, once per test process, on free loopback ports; or the broker named by
//! `VIGIL_TEST_KAFKA`. The broker stops when the test process exits (a watchdog shell kills
//! it when its stdin, held by this process, closes).

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// A running broker.
#[derive(Debug)]
pub struct KafkaBroker {
    /// `bootstrap.servers` for clients.
    pub bootstrap: String,
    /// The watchdog process (None when the broker came from `VIGIL_TEST_KAFKA`).
    watchdog: Mutex<Option<Child>>,
}

static BROKER: OnceLock<KafkaBroker> = OnceLock::new();

/// The broker of this test process, started on first use. Panics, loudly, when it cannot start.
pub fn broker() -> &'static KafkaBroker {
    BROKER.get_or_init(|| match std::env::var("VIGIL_TEST_KAFKA") {
        Ok(b) if !b.trim().is_empty() => KafkaBroker {
            bootstrap: b.trim().to_string(),
            watchdog: Mutex::new(None),
        },
        _ => start_broker().unwrap_or_else(|e| panic!("could not start the Apache Kafka test broker: {e}")),
    })
}

/// `prefix` plus 10 random lowercase characters: a topic or group name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    let suffix: String = (0..10).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
    format!("{prefix}_{suffix}")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/harness sits two levels below the workspace root")
        .to_path_buf()
}

/// Where the broker jars are kept: `VIGIL_KAFKA_LIBS`, else `target/kafka-libs`.
pub fn libs_dir() -> PathBuf {
    std::env::var_os("VIGIL_KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("kafka-libs"))
}

/// Fetches the broker jars with Maven (cached in `~/.m2`) unless already present.
pub fn ensure_jars() -> Result<PathBuf, String> {
    let libs = libs_dir();
    let have = std::fs::read_dir(&libs)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
        })
        .unwrap_or(false);
    if have {
        return Ok(libs);
    }
    let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka").join("pom.xml");
    let status = Command::new("mvn")
        .args(["-B", "-q", "-f"])
        .arg(&pom)
        .args(["dependency:copy-dependencies", "-DincludeScope=runtime"])
        .arg(format!("-DoutputDirectory={}", libs.display()))
        .status()
        .map_err(|e| format!("running mvn (is Maven installed?): {e}"))?;
    if !status.success() {
        return Err(format!("mvn could not fetch the Kafka jars ({status})"));
    }
    Ok(libs)
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A formatted broker directory and the command line to run it.
struct BrokerFiles {
    dir: PathBuf,
    port: u16,
    java_opts: Vec<String>,
    props_path: PathBuf,
}

fn prepare_broker() -> Result<BrokerFiles, String> {
    let libs = ensure_jars()?;
    let port = free_port()?;
    let ctrl = free_port()?;
    let dir = workspace_root()
        .join("target")
        .join("kafka-run")
        .join(format!("{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    let props = format!(
        "process.roles=broker,controller\nnode.id=1\n\
         controller.quorum.bootstrap.servers=127.0.0.1:{ctrl}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}\n\
         inter.broker.listener.name=PLAINTEXT\ncontroller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={data}\nnum.partitions=1\n\
         offsets.topic.replication.factor=1\noffsets.topic.num.partitions=1\n\
         transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
         transaction.state.log.num.partitions=1\n\
         share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\n",
        data = dir.join("data").display()
    );
    let props_path = dir.join("server.properties");
    std::fs::write(&props_path, props).map_err(|e| e.to_string())?;
    let log4j = Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka").join("log4j2.yaml");
    let classpath = format!("{}/*", libs.display());
    let java_opts = [
        "-Xms256m".to_string(),
        "-Xmx512m".to_string(),
        format!("-Dlog4j2.configurationFile={}", log4j.display()),
        "-cp".to_string(),
        classpath,
    ];
    let format = Command::new("java")
        .args(&java_opts)
        .args([
            "kafka.tools.StorageTool",
            "format",
            "-t",
            "dmlnaWwtdGVzdC1jbHVzdA",
            "-c",
        ])
        .arg(&props_path)
        .args(["--standalone", "--ignore-formatted"])
        .output()
        .map_err(|e| format!("running java (is a JDK 17 installed?): {e}"))?;
    if !format.status.success() {
        return Err(format!(
            "formatting broker storage failed: {}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        ));
    }
    Ok(BrokerFiles {
        dir,
        port,
        java_opts: java_opts.to_vec(),
        props_path,
    })
}

fn start_broker() -> Result<KafkaBroker, String> {
    let BrokerFiles {
        dir,
        port,
        java_opts,
        props_path,
    } = prepare_broker()?;
    let log_path = dir.join("broker.log");
    // The watchdog: runs the broker, waits for its stdin (held by this process) to close,
    // then stops the broker with SIGTERM and removes its files.
    let script = r#"dir="$1"; shift
java "$@" </dev/null >"$dir/broker.log" 2>&1 &
pid=$!
cat >/dev/null
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir""#;
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("vigil-kafka-watchdog")
        .arg(&dir)
        .args(&java_opts)
        .arg("kafka.Kafka")
        .arg(&props_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning the broker: {e}"))?;
    let broker = KafkaBroker {
        bootstrap: format!("127.0.0.1:{port}"),
        watchdog: Mutex::new(Some(child)),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("Kafka Server started") {
            eprintln!("vigil-testkit: Apache Kafka broker started at {}", broker.bootstrap);
            return Ok(broker);
        }
        let exited = broker
            .watchdog
            .lock()
            .map(|mut c| c.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)))))
            .unwrap_or(true);
        if exited || Instant::now() > deadline {
            let tail: String = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            return Err(format!("broker did not start (exited: {exited}); log tail:\n{tail}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `log` says the broker started, or fails after two minutes or when `exited()`.
fn wait_started(log_path: &Path, mut exited: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if log.contains("Kafka Server started") {
            return Ok(());
        }
        let exited = exited();
        if exited || Instant::now() > deadline {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "broker did not start (exited: {exited}); log tail:\n{}",
                tail.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A broker of one test alone, which the test may stop and start again (same ports, same
/// data): for tests of riding through a broker outage. Killed and removed on drop.
#[derive(Debug)]
pub struct RestartableBroker {
    /// `bootstrap.servers` for clients.
    pub bootstrap: String,
    files_dir: PathBuf,
    java_opts: Vec<String>,
    props_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl RestartableBroker {
    /// Formats and starts a new broker.
    pub fn start_new() -> Result<RestartableBroker, String> {
        let f = prepare_broker()?;
        let mut b = RestartableBroker {
            bootstrap: format!("127.0.0.1:{}", f.port),
            files_dir: f.dir,
            java_opts: f.java_opts,
            props_path: f.props_path,
            child: None,
            starts: 0,
        };
        b.start()?;
        Ok(b)
    }

    /// Starts the broker (after [`RestartableBroker::stop`]).
    pub fn start(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log_path = self.files_dir.join(format!("broker-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("java")
            .args(&self.java_opts)
            .arg("kafka.Kafka")
            .arg(&self.props_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawning the broker: {e}"))?;
        let started = wait_started(&log_path, || matches!(child.try_wait(), Ok(Some(_))));
        self.child = Some(child);
        started
    }

    /// Stops the broker (SIGTERM, waits for it to exit).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !matches!(child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Client helpers (topics, producing, offsets) against this broker.
    pub fn client(&self) -> KafkaBroker {
        KafkaBroker {
            bootstrap: self.bootstrap.clone(),
            watchdog: Mutex::new(None),
        }
    }
}

impl Drop for RestartableBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.files_dir);
    }
}

impl KafkaBroker {
    /// Stops the broker now (also happens when the process exits).
    pub fn shutdown(&self) {
        if let Ok(mut guard) = self.watchdog.lock()
            && let Some(mut child) = guard.take()
        {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    /// A client config pointing at this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    /// Creates a topic (waits for the operation to finish).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// Creates a topic with topic configs (e.g. `max.message.bytes`).
    pub fn create_topic_with(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create().expect("admin client");
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let res = block_on(admin.create_topics([&topic], &opts)).expect("create_topics request");
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    /// A producer with the given compression codec (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn producer(&self, compression: &str) -> FutureProducer {
        self.client_config()
            .set("compression.type", compression)
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "30000")
            // Room for the large-message tests (the topic's own limit still applies).
            .set("message.max.bytes", "8388608")
            .create()
            .expect("producer")
    }

    /// Produces `(key, value)` messages to `topic` (partition chosen by key hash) and waits for
    /// every delivery.
    pub fn produce<I>(&self, topic: &str, compression: &str, messages: I) -> usize
    where
        I: IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>)>,
    {
        let producer = self.producer(compression);
        let mut futures = Vec::new();
        for (key, value) in messages {
            let mut rec = FutureRecord::<[u8], [u8]>::to(topic).payload(value.as_slice());
            if let Some(k) = &key {
                rec = rec.key(k.as_slice());
            }
            loop {
                match producer.send_result(rec) {
                    Ok(f) => {
                        futures.push(f);
                        break;
                    }
                    Err((_, r)) => {
                        rec = r;
                        producer.poll(Duration::from_millis(20));
                    }
                }
            }
        }
        let n = futures.len();
        for f in futures {
            block_on(f).expect("delivery future").expect("message delivered");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        n
    }

    /// Reads every message of `topic` from the start until `expected` were read or `timeout`.
    pub fn read_all(&self, topic: &str, expected: usize, timeout: Duration) -> Vec<OwnedMessage> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", unique_name("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < expected && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                out.push(m.expect("consume").detach());
            }
        }
        out
    }

    /// The group's committed offsets (next offset to read) for partitions `0..partitions`.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        got.elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// Writes a line to stderr naming the broker (handy in test logs).
    pub fn describe(&self) {
        let _ = writeln!(std::io::stderr(), "kafka broker: {}", self.bootstrap);
    }
}

/// The payload of a message as text (tests).
pub fn payload_text(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()
}
