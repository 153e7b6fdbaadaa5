//! `tripline serve` under load over loopback, against `tripline run` on the
//! same events in the same run.
//!
//! The load is what a shipper's HTTP sink sends: NDJSON batches of 256
//! events, posted by a few clients that each keep one connection open and
//! send the next batch when the last is answered. Each configuration of
//! `serve` (1 or 2 workers; answering with the tagged batch, or forwarding
//! it to a downstream that takes it and answers 200) is measured twice:
//! loaded, with [`CLIENTS`] clients, for events/s and the latency of each
//! batch as a sender sees it; and unloaded, one batch at a time, for the
//! latency the hop adds to a batch. `tripline run` over the same events, as
//! a file, with the same number of workers, is the baseline.
//!
//! It drives the release binary, which `cargo bench` does not build:
//!
//! ```sh
//! cargo build --release -p tripline
//! cargo bench -p tripline-benches --bench serve_load
//! ```
//!
//! Everything here is std: a blocking HTTP/1.1 client and downstream that
//! speak just what `serve` speaks (Content-Length bodies, keep-alive), so
//! that the figures measure `serve`, not a client library.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tripline_benches::cloudtrail_events;

/// Events per batch: Vector's and Fluent Bit's batches are of this order,
/// and it is `serve`'s default number of events per guest call.
const BATCH_EVENTS: usize = 256;
/// Distinct batches generated; the load cycles through them.
const DISTINCT_BATCHES: usize = 64;
/// Batches per loaded round: 131,072 events, about 165 MB, half a second
/// or so: long enough that start-up and scheduling noise stay small.
const ROUND_BATCHES: usize = 512;
/// Loaded rounds per configuration; the median is reported.
const ROUNDS: usize = 5;
/// Batches sent one at a time for the unloaded latency.
const UNLOADED_BATCHES: usize = 64;
/// Concurrent clients under load: as many as `serve --workers 1` takes in
/// flight by default, so that no batch is refused with 429.
const CLIENTS: usize = 4;
const MATCH_EVERY: usize = 10;
/// A configuration that takes longer than this is stuck; the bench stops.
const CONFIG_DEADLINE: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    // `cargo bench` passes `--bench`; no other argument is taken.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let binary = std::env::var_os("TRIPLINE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/tripline"));
    if !binary.is_file() {
        eprintln!(
            "serve_load: {} is missing; build it first: cargo build --release -p tripline",
            binary.display()
        );
        std::process::exit(2);
    }
    let scratch = root.join("target/tmp/serve-load");
    std::fs::create_dir_all(&scratch).unwrap();

    let events = cloudtrail_events(BATCH_EVENTS * DISTINCT_BATCHES, MATCH_EVERY);
    let batches: Vec<Arc<Vec<u8>>> = events
        .split_inclusive(|&b| b == b'\n')
        .collect::<Vec<_>>()
        .chunks(BATCH_EVENTS)
        .map(|lines| Arc::new(lines.concat()))
        .collect();
    let round_events = (ROUND_BATCHES * BATCH_EVENTS) as f64;
    let event_bytes = events.len() as f64 / (BATCH_EVENTS * DISTINCT_BATCHES) as f64;

    let tool = Tool { binary, cache: scratch.join("cache") };
    let file = scratch.join("events.ndjson");
    let empty = scratch.join("empty.ndjson");
    let mut whole = Vec::with_capacity(events.len() * ROUND_BATCHES / DISTINCT_BATCHES);
    for _ in 0..ROUND_BATCHES / DISTINCT_BATCHES {
        whole.extend_from_slice(&events);
    }
    std::fs::write(&file, &whole).unwrap();
    std::fs::write(&empty, b"").unwrap();
    drop(whole);
    // The first start compiles the component into the cache; later ones
    // load it, as a deployed hop does.
    tool.run(&empty, 1);

    println!(
        "tripline serve over loopback: {} events of {:.0} bytes per round ({} batches of {}, \
         1 in {} tagged), {} clients, median of {} rounds",
        grouped(round_events as u64),
        event_bytes,
        ROUND_BATCHES,
        BATCH_EVENTS,
        MATCH_EVERY,
        CLIENTS,
        ROUNDS
    );
    println!();
    println!(
        "| configuration | events/s | x run | batch p50 | batch p99 | unloaded p50 | unloaded p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for workers in [1, 2] {
        let run_rate = tool.run_rate(&file, &empty, workers, round_events);
        let per_batch = Duration::from_secs_f64(BATCH_EVENTS as f64 / run_rate);
        println!(
            "| run, {} | {} | 1.00 | {} per {BATCH_EVENTS} events | | | |",
            plural(workers),
            thousands(run_rate),
            ms(per_batch),
        );
        for forward in [false, true] {
            let started = Instant::now();
            let m = measure(&tool, workers, forward, &batches);
            assert!(started.elapsed() < CONFIG_DEADLINE * 2, "configuration took too long");
            let label = if forward { "forwarding to a downstream" } else { "answering" };
            println!(
                "| serve, {}, {label} | {} | {:.2} | {} | {} | {} | {} |",
                plural(workers),
                thousands(m.rate),
                m.rate / run_rate,
                ms(m.loaded.0),
                ms(m.loaded.1),
                ms(m.unloaded.0),
                ms(m.unloaded.1),
            );
        }
    }
    println!();
    println!(
        "x run: events/s as a ratio to `tripline run` with as many workers, over the same \
         events as a file (start-up subtracted). Latency: from the first byte of a request \
         sent to the last byte of its answer read, at the client."
    );
}

/// The binary and the component cache every process shares.
struct Tool {
    binary: PathBuf,
    cache: PathBuf,
}

impl Tool {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.env("TRIPLINE_CACHE_DIR", &self.cache);
        cmd
    }

    /// Runs `tripline run` over `file` and returns how long it took.
    fn run(&self, file: &Path, workers: usize) -> Duration {
        let started = Instant::now();
        let out = self
            .command()
            .args(["run", "--workers", &workers.to_string(), "-o", "/dev/null"])
            .arg(file)
            .stderr(Stdio::piped())
            .output()
            .expect("failed to run tripline run");
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "tripline run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    /// Events/s of `tripline run` over `file`, less its start-up, which
    /// a run over `empty` measures; medians of [`ROUNDS`].
    fn run_rate(&self, file: &Path, empty: &Path, workers: usize, events: f64) -> f64 {
        let startup = median((0..ROUNDS).map(|_| self.run(empty, workers)).collect());
        let whole = median((0..ROUNDS).map(|_| self.run(file, workers)).collect());
        events / whole.saturating_sub(startup).as_secs_f64()
    }
}

struct Measured {
    rate: f64,
    /// Median and 99th percentile, under load and one at a time.
    loaded: (Duration, Duration),
    unloaded: (Duration, Duration),
}

fn measure(tool: &Tool, workers: usize, forward: bool, batches: &[Arc<Vec<u8>>]) -> Measured {
    let sink = forward.then(Sink::start);
    let serve = Serve::start(tool, workers, sink.as_ref().map(|s| s.addr));
    // Warm up: connections, the workers' first calls, the allocator.
    drive(serve.addr, batches, 1, DISTINCT_BATCHES);

    let mut rates = Vec::new();
    let mut loaded = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let latencies = drive(serve.addr, batches, CLIENTS, ROUND_BATCHES);
        let took = started.elapsed();
        rates.push((ROUND_BATCHES * BATCH_EVENTS) as f64 / took.as_secs_f64());
        loaded.extend(latencies);
    }
    let unloaded = drive(serve.addr, batches, 1, UNLOADED_BATCHES);
    serve.stop();
    if let Some(sink) = sink {
        // Every event sent reached the downstream, warm-up included.
        let sent = (DISTINCT_BATCHES + ROUNDS * ROUND_BATCHES + UNLOADED_BATCHES) * BATCH_EVENTS;
        assert_eq!(sink.events.load(Ordering::Relaxed), sent as u64, "events lost or invented");
    }
    rates.sort_by(f64::total_cmp);
    Measured {
        rate: rates[rates.len() / 2],
        loaded: percentiles(loaded),
        unloaded: percentiles(unloaded),
    }
}

/// Posts `total` batches from `clients` threads, each on its own
/// connection, and returns the latency of every one.
fn drive(
    addr: SocketAddr,
    batches: &[Arc<Vec<u8>>],
    clients: usize,
    total: usize,
) -> Vec<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let next = Arc::clone(&next);
            let batches: Vec<Arc<Vec<u8>>> = batches.to_vec();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return latencies;
                    }
                    let batch = &batches[i % batches.len()];
                    let started = Instant::now();
                    let (status, answer) = client.post(batch).expect("the request failed");
                    latencies.push(started.elapsed());
                    assert_eq!(status, 200, "serve answered {status}");
                    // Without a downstream the answer is the tagged batch.
                    assert!(answer == 0 || answer > batch.len(), "a short answer: {answer} bytes");
                }
            })
        })
        .collect();
    threads.into_iter().flat_map(|t| t.join().expect("a client failed")).collect()
}

/// A running `tripline serve`.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(tool: &Tool, workers: usize, forward: Option<SocketAddr>) -> Serve {
        let mut cmd = tool.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--workers", &workers.to_string()]);
        if let Some(addr) = forward {
            cmd.args(["--forward", &format!("http://{addr}/")]);
        }
        let mut child = cmd
            .env("TRIPLINE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to start tripline serve");
        let stderr = child.stderr.take().unwrap();
        let (found, address) = mpsc::channel();
        // Drains stderr for the life of the process; a warning is printed
        // as it comes, since every batch should succeed.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("address=") {
                    let rest = &line[at + "address=".len()..];
                    let end = rest.find(' ').unwrap_or(rest.len());
                    let _ = found.send(rest[..end].parse::<SocketAddr>().ok());
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("serve: {line}");
                }
            }
        });
        match address.recv_timeout(CONFIG_DEADLINE) {
            Ok(Some(addr)) => Serve { child, addr },
            _ => {
                let _ = child.kill();
                panic!("tripline serve did not start");
            }
        }
    }

    /// Stops it as a supervisor would, with SIGTERM, and checks that it
    /// exits cleanly.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM failed");
        let deadline = Instant::now() + CONFIG_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("serve did not stop after SIGTERM");
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    answer: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("failed to connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let reader = BufReader::with_capacity(1 << 16, stream.try_clone().unwrap());
        Client { writer: stream, reader, answer: Vec::new() }
    }

    /// Posts one NDJSON batch; returns the status and the answer's length.
    fn post(&mut self, body: &[u8]) -> io::Result<(u16, usize)> {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: tripline\r\nContent-Type: application/x-ndjson\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let head = read_head(&mut self.reader)?;
        let status =
            head.lines().next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
        let status = status.ok_or_else(|| io::Error::other(format!("bad answer: {head:?}")))?;
        let length = content_length(&head)?;
        self.answer.resize(length, 0);
        self.reader.read_exact(&mut self.answer)?;
        Ok((status, length))
    }
}

/// The downstream: takes every batch, counts its events, answers 200.
struct Sink {
    addr: SocketAddr,
    events: Arc<AtomicU64>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let events = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&events);
        // Serves until the bench exits; one thread per connection, of which
        // `serve` opens no more than it has batches in flight.
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    let _ = sink_connection(stream, &counter);
                });
            }
        });
        Sink { addr, events }
    }
}

fn sink_connection(stream: TcpStream, events: &AtomicU64) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut body = Vec::new();
    loop {
        let head = match read_head(&mut reader) {
            Ok(head) => head,
            // `serve` closed the connection: done.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        body.resize(content_length(&head)?, 0);
        reader.read_exact(&mut body)?;
        let lines = body.iter().filter(|&&b| b == b'\n').count();
        let unterminated = !body.is_empty() && !body.ends_with(b"\n");
        events.fetch_add((lines + usize::from(unterminated)) as u64, Ordering::Relaxed);
        writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
    }
}

/// Reads an HTTP head up to its blank line.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut head = String::new();
    loop {
        let before = head.len();
        if reader.read_line(&mut head)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if head[before..].trim_end().is_empty() {
            return Ok(head);
        }
    }
}

/// The Content-Length of a head; `serve` and its client always send one.
fn content_length(head: &str) -> io::Result<usize> {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| io::Error::other(format!("no Content-Length in {head:?}")))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn percentiles(mut values: Vec<Duration>) -> (Duration, Duration) {
    values.sort();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn plural(workers: usize) -> String {
    format!("{workers} worker{}", if workers == 1 { "" } else { "s" })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// `rate` to the nearest thousand, with thousands separators.
fn thousands(rate: f64) -> String {
    grouped((rate / 1000.0).round() as u64 * 1000)
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
