//! `vigil sql`, `vigil query` and `vigil serve`: clap arguments and runners over `vigil_queries`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use vigil_queries::datafusion::dataframe::DataFrame;

use vigil_queries::Analyst;
use vigil_queries::named;
use vigil_queries::output::{Format, write_batches};
use vigil_queries::postgres::{AuthMethod, Credentials, PgServer, ResultLimits, TlsFiles};

/// Where the data is and how to print results.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Data directory: events/*.parquet segments, alerts/*.parquet, accounts.csv or
    /// accounts.parquet, health.parquet.
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `vigil sql "<query>"` or `vigil sql --file f.sql`: run read-only SQL.
#[derive(Debug, Clone, clap::Args)]
pub struct SqlArgs {
    /// The SQL to run (one or more statements separated by `;`).
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub query: Option<String>,
    /// Read the SQL from this file.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `vigil query <name> [--param k=v]...`: run a named query; `vigil query --list` lists them.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// The named query.
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// A parameter, NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_parser = named::parse_assignment)]
    pub params: Vec<(String, String)>,
    /// List the named queries and their parameters.
    #[arg(long)]
    pub list: bool,
    /// Print the SQL with parameters substituted instead of running it.
    #[arg(long)]
    pub show_sql: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `vigil serve`: the Postgres wire protocol server, read-only.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VIGIL_PG_LISTEN", default_value = "127.0.0.1:5433")]
    pub listen: SocketAddr,
    /// The user name clients log in with.
    #[arg(long, env = "VIGIL_PG_USER", default_value = "vigil")]
    pub user: String,
    /// The password clients log in with.
    #[arg(long, env = "VIGIL_PG_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// How clients prove the password: SCRAM-SHA-256, or MD5 for old clients only.
    #[arg(long, value_enum, default_value = "scram-sha-256")]
    pub auth: AuthMethod,
    /// TLS: the server's certificate chain (PEM); with --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: the certificate's private key (PEM); with --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Rows one query may return (0: no limit); past it the query ends with SQLSTATE 54000.
    #[arg(long, default_value_t = ResultLimits::DEFAULT_MAX_ROWS)]
    pub max_result_rows: u64,
    /// Bytes of row data one query may return (0: no limit).
    #[arg(long, default_value_t = ResultLimits::DEFAULT_MAX_BYTES)]
    pub max_result_bytes: u64,
    /// Data directory (see `vigil sql --help`).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

async fn open(dir: &std::path::Path) -> anyhow::Result<Analyst> {
    Analyst::open_data_dir(dir)
        .await
        .with_context(|| format!("opening data directory {}", dir.display()))
}

async fn print(frames: Vec<DataFrame>, out: &OutputArgs) -> anyhow::Result<()> {
    let mut results: Vec<(SchemaRef, Vec<RecordBatch>)> = Vec::with_capacity(frames.len());
    for df in frames {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        results.push((schema, df.collect().await?));
    }
    if out.format == Format::Parquet && results.len() != 1 {
        anyhow::bail!("Parquet output takes exactly one statement");
    }
    let sink: Box<dyn Write + Send> = match &out.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let mut sink = sink;
    for (schema, batches) in &results {
        write_batches(&mut sink, schema, batches, out.format)?;
    }
    sink.flush()?;
    Ok(())
}

/// Runs `vigil sql`.
pub async fn run_sql(args: SqlArgs) -> anyhow::Result<()> {
    let sql = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => anyhow::bail!("give the SQL or --file"),
    };
    let analyst = open(&args.out.data_dir).await?;
    let frames = analyst.statements(&sql).await?;
    print(frames, &args.out).await
}

/// Runs `vigil query`.
pub async fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    if args.list {
        let mut s = String::new();
        for q in named::builtin() {
            s.push_str(&q.help());
        }
        print!("{s}");
        return Ok(());
    }
    let name = args.name.as_deref().context("give a query name or --list")?;
    let q = named::find(name)?;
    if args.show_sql {
        println!("{}", q.render(&args.params)?);
        return Ok(());
    }
    let analyst = open(&args.out.data_dir).await?;
    let df = analyst.named(name, &args.params).await?;
    print(vec![df], &args.out).await
}

/// Runs `vigil serve` until Ctrl-C.
pub async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.password.is_empty() {
        anyhow::bail!("an empty password is not allowed (set VIGIL_PG_PASSWORD)");
    }
    let analyst = open(&args.data_dir).await?;
    let server = PgServer::bind(
        args.listen,
        &analyst,
        Credentials {
            user: args.user.clone(),
            password: args.password.clone(),
        },
        args.auth,
    )
    .await?
    .with_limits(ResultLimits::from_settings(args.max_result_rows, args.max_result_bytes));
    let server = match TlsFiles::from_pair(args.tls_cert.as_ref(), args.tls_key.as_ref()) {
        Some(files) => server.with_tls(&files)?,
        None => server,
    };
    eprintln!(
        "vigil serve: listening on {} (user {}), read-only",
        server.local_addr()?,
        args.user
    );
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
