//! The `tripline` command line.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};

use tripline::cache;
use tripline::component::{
    self, Detector, Limits, ReferenceList, RuleError, RuleInfo, RuleSource, Runtime,
    DEFAULT_COMPONENT,
};
use tripline::run::{Input, RunOptions, Runner, StrictFailure};
use tripline::serve::{self, BatchLimits, ServeOptions, Stopped};
use tripline::tag::{self, Tagger};
use tripline_engine::diag::{render_at, Position, Source};

/// Tags log events that match YARA-L detections, inline, in a WebAssembly sandbox.
#[derive(Parser)]
#[command(name = "tripline", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read NDJSON events, write them back with matches tagged.
    Run(RunArgs),
    /// Print the loaded rules and their meta as JSON.
    Info(DetectorArgs),
    /// Load rule files and report every problem in them.
    Check(CheckArgs),
    /// Take batches of events over HTTP, tag them, and hand them on.
    Serve(ServeArgs),
}

/// Which component runs, with which rules and limits.
#[derive(Args)]
struct DetectorArgs {
    /// A detector component to run instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
    /// YARA-L files to load instead of the component's built-in rules.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    rules: Vec<PathBuf>,
    /// A reference list the rules name as `%NAME`: one entry per line of
    /// FILE; blank lines and `//` comments are skipped. Repeatable.
    #[arg(long = "list", value_name = "NAME=FILE")]
    lists: Vec<String>,
    /// A data table the rules name as `%NAME.COLUMN`: a CSV file whose
    /// first row names the columns. Repeatable.
    #[arg(long = "table", value_name = "NAME=FILE")]
    tables: Vec<String>,
    /// Linear memory one component instance may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    memory_limit: usize,
    /// Wall time one call into the component may take, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    call_timeout: u64,
    /// Compile the component in memory; neither read nor write the cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args)]
struct RunArgs {
    /// NDJSON files to read, in order; standard input when none or `-`.
    files: Vec<PathBuf>,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The top-level field that holds a matching event's detections.
    #[arg(long, value_name = "NAME", default_value = "detections")]
    tag_field: String,
    /// Write only the events that matched.
    #[arg(long)]
    only_matches: bool,
    /// Fail, exiting with status 1, at the first event that cannot be evaluated.
    #[arg(long)]
    strict: bool,
    /// Most events per call into the component.
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_events: usize,
    /// Most bytes per call into the component.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// Longer events are forwarded unchanged, unevaluated, and counted.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_event_bytes: usize,
    /// Component instances evaluating batches at once, each on its own
    /// thread; output keeps input order [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    #[command(flatten)]
    detector: DetectorArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// The address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8686")]
    listen: SocketAddr,
    /// The path batches are posted to.
    #[arg(long, value_name = "PATH", default_value = "/")]
    path: String,
    /// Hand each tagged batch to this http:// URL, and answer the sender once
    /// it is accepted; without it, the tagged batch is the answer.
    #[arg(long, value_name = "URL")]
    forward: Option<String>,
    /// How long one attempt to hand a batch on may take (as 500ms, 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    forward_timeout: Duration,
    /// Attempts after a failed one before the sender is told to retry.
    #[arg(long, value_name = "N", default_value_t = 2)]
    forward_retries: u32,
    /// Component instances, each on its own thread [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Batches handled at once; more are answered 429 [default: 4 per worker].
    #[arg(long, value_name = "N")]
    max_in_flight: Option<usize>,
    /// The largest body taken, as sent and decompressed.
    #[arg(long, value_name = "BYTES", default_value_t = 10 << 20)]
    max_body_bytes: usize,
    /// How long requests in flight may take to finish after SIGTERM or SIGINT.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = duration)]
    shutdown_grace: Duration,
    /// The top-level field that holds a matching event's detections.
    #[arg(long, value_name = "NAME", default_value = "detections")]
    tag_field: String,
    /// Most events per call into the component.
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_events: usize,
    /// Most bytes per call into the component.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// Longer events are forwarded unchanged, unevaluated, and counted.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_event_bytes: usize,
    #[command(flatten)]
    detector: DetectorArgs,
}

#[derive(Args)]
struct CheckArgs {
    /// YARA-L files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A reference list the rules name as `%NAME`, as for `run`. Without
    /// it, the list's entries go unchecked. Repeatable.
    #[arg(long = "list", value_name = "NAME=FILE")]
    lists: Vec<String>,
    /// A data table the rules name as `%NAME.COLUMN`, as for `run`.
    /// Repeatable.
    #[arg(long = "table", value_name = "NAME=FILE")]
    tables: Vec<String>,
    /// A detector component to check with instead of the built-in engine.
    /// Lists and tables it is not given are then errors, as for `run`.
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Info(args) => info(args),
        Command::Check(args) => check(args),
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let broken_pipe = err.chain().any(|e| {
                e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                // The reader went away (`tripline run | head`): stop quietly.
                return ExitCode::from(141);
            }
            if let Some(strict) = err.downcast_ref::<StrictFailure>() {
                eprintln!("tripline: {strict} (--strict)");
            } else {
                eprintln!("tripline: error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Builds the runtime for `--component` (or the built-in component).
fn runtime(component: Option<&Path>, limits: Limits, use_cache: bool) -> Result<Arc<Runtime>> {
    let engine = component::engine()?;
    let (bytes, name) = match component {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("failed to read component {}", path.display()))?;
            (bytes, path.display().to_string())
        }
        None => {
            (DEFAULT_COMPONENT.to_vec(), format!("tripline-detector@{}", env!("CARGO_PKG_VERSION")))
        }
    };
    let dir = if use_cache { cache::default_dir() } else { None };
    let (compiled, _origin) = cache::load(&engine, &bytes, dir.as_deref())
        .with_context(|| format!("component `{name}`"))?;
    Ok(Arc::new(Runtime::new(&engine, compiled, &name, limits)?))
}

/// Reads rule files into sources for the component.
fn read_sources(files: &[PathBuf]) -> Result<Vec<RuleSource>> {
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read rule file {}", path.display()))?;
            Ok(RuleSource { name: path.display().to_string(), text })
        })
        .collect()
}

/// Reads `--list NAME=FILE` and `--table NAME=FILE` arguments into the
/// reference lists the component takes; a table gives one list per
/// column, named `table.column`.
fn read_lists(lists: &[String], tables: &[String]) -> Result<Vec<ReferenceList>> {
    let mut out: Vec<ReferenceList> = Vec::new();
    let mut add = |list: ReferenceList, arg: &str| {
        if out.iter().any(|l| l.name == list.name) {
            bail!("{arg}: `%{}` is given twice", list.name);
        }
        out.push(list);
        Ok(())
    };
    for arg in lists {
        let (name, file) = name_and_file("--list", arg)?;
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read list `{name}` from {file}"))?;
        let entries = tripline_engine::lists::parse_entries(&text);
        add(ReferenceList { name, entries }, &format!("--list {arg}"))?;
    }
    for arg in tables {
        let (name, file) = name_and_file("--table", arg)?;
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read table `{name}` from {file}"))?;
        let columns = tripline_engine::lists::table_columns(&name, &text)
            .map_err(|e| anyhow::anyhow!("--table {arg}: {file}: {e}"))?;
        for column in columns {
            let entries = column.entries;
            add(ReferenceList { name: column.name, entries }, &format!("--table {arg}"))?;
        }
    }
    Ok(out)
}

/// Splits `NAME=FILE`; a list or table name is letters, digits and `_`,
/// and a list may name a table column as `table.column`.
fn name_and_file<'a>(flag: &str, arg: &'a str) -> Result<(String, &'a str)> {
    let Some((name, file)) = arg.split_once('=') else {
        bail!("{flag} expects NAME=FILE, found `{arg}`");
    };
    let name = name.strip_prefix('%').unwrap_or(name);
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let valid = match name.split_once('.') {
        Some((table, column)) => flag == "--list" && word(table) && word(column),
        None => word(name),
    };
    if !valid {
        bail!("{flag} {arg}: a name is letters, digits and `_`, found `{name}`");
    }
    Ok((name.to_string(), file))
}

/// Says on stderr which rules are loaded but not run, since they need
/// windowed evaluation.
fn report_windowed(rules: &[RuleInfo]) {
    for rule in rules {
        if let Some(why) = &rule.windowed {
            eprintln!(
                "tripline: rule `{}` needs windowed evaluation ({why}); it is loaded but does \
                 not tag events",
                rule.name
            );
        }
    }
}

/// Renders rule errors with the source line and a caret.
fn render_errors(sources: &[RuleSource], errors: &[RuleError]) -> String {
    let mut out = String::new();
    for e in errors {
        let text = sources.iter().find(|s| s.name == e.source_name).map_or("", |s| s.text.as_str());
        let src = Source { name: &e.source_name, text };
        let pos = Position { line: e.span.line, column: e.span.column, length: e.span.length };
        out.push_str(&render_at(&src, pos, &e.code, &e.message, e.rule.as_deref()));
        out.push('\n');
    }
    out
}

/// An instance with `--rules` loaded, if given.
fn detector(args: &DetectorArgs) -> Result<Detector> {
    let limits = Limits {
        memory_bytes: args
            .memory_limit
            .checked_mul(1 << 20)
            .context("--memory-limit is too large")?,
        deadline: Duration::from_millis(args.call_timeout),
    };
    if args.call_timeout == 0 {
        bail!("--call-timeout must be at least 1 ms");
    }
    let runtime = runtime(args.component.as_deref(), limits, !args.no_cache)?;
    let mut detector = runtime.instantiate()?;
    let lists = read_lists(&args.lists, &args.tables)?;
    if !lists.is_empty() && args.rules.is_empty() {
        bail!("--list and --table need --rules: the built-in rules name no list or table");
    }
    detector.set_lists(lists);
    if !args.rules.is_empty() {
        let sources = read_sources(&args.rules)?;
        if let Err(errors) = detector.load_rules(&sources)? {
            eprint!("{}", render_errors(&sources, &errors));
            bail!("{} problem(s) in the rule files; no rules loaded", errors.len());
        }
    }
    Ok(detector)
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let workers = workers(args.workers)?;
    let mut detector = detector(&args.detector)?;
    let rules = detector.rules()?;
    report_windowed(&rules);
    let tagger = Tagger::new(&args.tag_field, &rules);
    let opts = RunOptions {
        only_matches: args.only_matches,
        strict: args.strict,
        batch_events: args.batch_events.max(1),
        batch_bytes: args.batch_bytes.max(1),
        max_event_bytes: args.max_event_bytes.max(1),
        workers,
        ..RunOptions::default()
    };
    let mut inputs = Vec::new();
    if args.files.is_empty() {
        inputs.push(Input { name: "<stdin>".into(), reader: Box::new(io::stdin().lock()) });
    }
    for path in &args.files {
        if path.as_os_str() == "-" {
            inputs.push(Input { name: "<stdin>".into(), reader: Box::new(io::stdin().lock()) });
            continue;
        }
        let file =
            File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
        let reader = Box::new(BufReader::with_capacity(256 << 10, file));
        inputs.push(Input { name: path.display().to_string(), reader });
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            let file = File::create(path)
                .with_context(|| format!("failed to create {}", path.display()))?;
            Box::new(BufWriter::with_capacity(256 << 10, file))
        }
        None => Box::new(BufWriter::with_capacity(256 << 10, io::stdout().lock())),
    };
    let mut stderr = io::stderr();
    let stats = Runner::new(detector, &tagger, opts, &mut stderr)?.run(inputs, &mut out)?;
    let mut summary = format!("tripline: {}", stats.summary());
    for (rule, count) in rules.iter().zip(&stats.per_rule) {
        summary.push_str(&format!("; {}: {count}", rule.name));
    }
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn info(args: DetectorArgs) -> Result<ExitCode> {
    let mut detector = detector(&args)?;
    let rules = detector.rules()?;
    let doc = serde_json::json!({
        "component": detector.name(),
        "rules": rules.iter().map(tag::rule_json).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}

fn check(args: CheckArgs) -> Result<ExitCode> {
    let lists = read_lists(&args.lists, &args.tables)?;
    let sources = read_sources(&args.files)?;
    let checked = match &args.component {
        Some(path) => check_in_component(path, &sources, lists)?,
        None => check_natively(&sources, lists),
    };
    match checked {
        Ok(rules) => {
            let warnings: Vec<RuleError> =
                rules.iter().flat_map(|r| r.warnings.iter().cloned()).collect();
            print!("{}", render_errors(&sources, &warnings));
            for rule in &rules {
                if let Some(why) = &rule.windowed {
                    println!(
                        "note: rule `{}` needs windowed evaluation ({why}); it loads but does \
                         not tag events",
                        rule.name
                    );
                }
            }
            println!(
                "{} rule(s) in {} file(s): ok, {} warning(s)",
                rules.len(),
                sources.len(),
                warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            print!("{}", render_errors(&sources, &errors));
            println!("{} error(s) in {} file(s)", errors.len(), sources.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

type Checked = std::result::Result<Vec<RuleInfo>, Vec<RuleError>>;

/// Loads the rules into `component`, exactly as `run` would.
fn check_in_component(
    component: &Path,
    sources: &[RuleSource],
    lists: Vec<ReferenceList>,
) -> Result<Checked> {
    let runtime = runtime(Some(component), Limits::default(), true)?;
    let mut detector = runtime.instantiate()?;
    detector.set_lists(lists);
    Ok(detector.load_rules(sources)?)
}

/// Checks the rules with the engine built into this binary, the one the
/// built-in component holds, without starting wasmtime. Lists and tables
/// not given are warnings: their entries are data for a run.
fn check_natively(sources: &[RuleSource], lists: Vec<ReferenceList>) -> Checked {
    use tripline_engine::{diag, Engine, RefList};
    let srcs: Vec<diag::Source> =
        sources.iter().map(|s| diag::Source { name: &s.name, text: &s.text }).collect();
    let lists: Vec<RefList> =
        lists.into_iter().map(|l| RefList { name: l.name, entries: l.entries }).collect();
    let error = |e: &tripline_engine::LoadError| {
        let src = &srcs[e.source];
        let pos = src.position(e.diag.span);
        RuleError {
            code: e.diag.code.as_str().to_string(),
            message: e.diag.message.clone(),
            rule: e.diag.rule.clone(),
            source_name: src.name.to_string(),
            span: component::SourceSpan { line: pos.line, column: pos.column, length: pos.length },
        }
    };
    let engine = Engine::check(&srcs, &lists)
        .map_err(|errors| errors.iter().map(error).collect::<Vec<_>>())?;
    let warnings: Vec<RuleError> = engine.warnings().iter().map(error).collect();
    Ok(engine
        .rules()
        .iter()
        .map(|rule| RuleInfo {
            name: rule.name.clone(),
            source_name: rule.source_name.clone(),
            meta: Vec::new(),
            placeholders: rule.placeholders.clone(),
            outcomes: rule.outcome_names.clone(),
            windowed: rule.windowed.clone(),
            warnings: warnings
                .iter()
                .filter(|w| w.rule.as_deref() == Some(&rule.name))
                .cloned()
                .collect(),
        })
        .collect())
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIPLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).init();

    let forward = args.forward.as_deref().map(forward_target).transpose()?;
    if !args.path.starts_with('/') || args.path == "/health" || args.path == "/metrics" {
        bail!("--path must start with `/` and be neither /health nor /metrics");
    }
    if args.detector.call_timeout == 0 {
        bail!("--call-timeout must be at least 1 ms");
    }
    let limits = Limits {
        memory_bytes: args
            .detector
            .memory_limit
            .checked_mul(1 << 20)
            .context("--memory-limit is too large")?,
        deadline: Duration::from_millis(args.detector.call_timeout),
    };
    let workers = workers(args.workers)?;
    let runtime = runtime(args.detector.component.as_deref(), limits, !args.detector.no_cache)?;
    let sources = read_sources(&args.detector.rules)?;
    let lists = read_lists(&args.detector.lists, &args.detector.tables)?;
    let mut detectors = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut detector = runtime.instantiate()?;
        detector.set_lists(lists.clone());
        if !sources.is_empty() {
            if let Err(errors) = detector.load_rules(&sources)? {
                eprint!("{}", render_errors(&sources, &errors));
                bail!("{} problem(s) in the rule files; no rules loaded", errors.len());
            }
        }
        detectors.push(detector);
    }
    let rules = detectors[0].rules()?;
    let tagger = Tagger::new(&args.tag_field, &rules);
    let opts = ServeOptions {
        listen: args.listen,
        path: args.path,
        forward,
        forward_timeout: args.forward_timeout,
        forward_retries: args.forward_retries,
        max_body_bytes: args.max_body_bytes.max(1),
        max_in_flight: args.max_in_flight.unwrap_or(workers * 4).max(1),
        shutdown_grace: args.shutdown_grace,
        limits: BatchLimits {
            batch_events: args.batch_events.max(1),
            batch_bytes: args.batch_bytes.max(1),
            max_event_bytes: args.max_event_bytes.max(1),
        },
    };
    let names = rules.into_iter().map(|r| r.name).collect();
    match serve::serve(opts, detectors, tagger, names)? {
        Stopped::Clean => Ok(ExitCode::SUCCESS),
        Stopped::Cut => Ok(ExitCode::FAILURE),
    }
}

/// `--workers`, or one per core.
fn workers(arg: Option<usize>) -> Result<usize> {
    match arg {
        Some(0) => bail!("--workers must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Checks `--forward`: an absolute http:// URL.
fn forward_target(url: &str) -> Result<hyper::Uri> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("--forward `{url}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http") if uri.authority().is_some() => Ok(uri),
        Some("https") => bail!(
            "--forward `{url}`: https is not supported; forward to a local TLS proxy over http"
        ),
        _ => bail!("--forward `{url}` must be an absolute http:// URL"),
    }
}

/// A duration such as `250ms`, `10s` or `2m`; a bare number is seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 10s"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{text}`: the unit must be ms, s or m")),
    }
}
