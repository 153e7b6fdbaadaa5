//! Running a detector component under wasmtime, inside limits.
//!
//! A [`Runtime`] holds the compiled component and the engine settings; a
//! [`Detector`] is one instance of it with its own store. Every call into
//! the guest runs under an epoch deadline and a memory limit. A trap (the
//! guest crashed, ran out of time or memory) is kept apart from the errors
//! the guest returns itself, and leaves the instance unusable until
//! [`Detector::restart`] builds a fresh one.
//!
//! The linker is empty: the component imports nothing, so it can reach no
//! file, socket, environment variable or clock. A component that asks for
//! any import fails to instantiate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "detector-component",
    });
}

pub use bindings::exports::tripline::detector::detector::{
    Detection, EventError, JsonError, MetaEntry, MetaValue, OutcomeValue, ReferenceList, RuleError,
    RuleInfo, RuleSource, SourceSpan,
};
use bindings::{DetectorComponent, DetectorComponentPre};

/// The verdict for one event.
pub type Verdict = std::result::Result<Vec<Detection>, EventError>;

/// The component built into this binary: the engine and the default rules.
pub static DEFAULT_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tripline_detector.wasm"));

/// How long one epoch tick lasts. Deadlines are counted in ticks, so this
/// is their resolution; 10 ms costs nothing measurable and keeps a runaway
/// guest from overshooting its deadline by much.
const TICK: Duration = Duration::from_millis(10);

/// Bounds on each instance.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Linear memory the guest may grow to, in bytes.
    pub memory_bytes: usize,
    /// Wall time one call may take.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 256 << 20, deadline: Duration::from_secs(5) }
    }
}

/// Why a call into the component failed.
#[derive(Debug)]
pub enum CallError {
    /// The guest trapped or hit a limit. The instance must be restarted.
    Trap(anyhow::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Trap(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Per-store host data: only the limiter, since the guest imports nothing.
struct HostState {
    limits: StoreLimits,
}

/// A compiled component, ready to instantiate.
pub struct Runtime {
    engine: Engine,
    pre: DetectorComponentPre<HostState>,
    name: String,
    limits: Limits,
}

/// The wasmtime engine settings every Tripline host uses. Precompiled
/// components are only valid for an engine with the same settings.
pub fn engine() -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("failed to set up the wasmtime engine")?;
    start_ticker(&engine);
    Ok(engine)
}

/// Advances the epoch of `engine` every [`TICK`] from a background thread,
/// until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("tripline-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("failed to start the epoch thread");
}

impl Runtime {
    /// Prepares `component` for instantiation. `name` is how messages refer
    /// to it.
    pub fn new(
        engine: &Engine,
        component: Component,
        name: &str,
        limits: Limits,
    ) -> Result<Runtime> {
        let linker: Linker<HostState> = Linker::new(engine);
        let pre =
            linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
                format!(
                    "component `{name}` cannot run here: it imports what the host does not grant"
                )
            })?;
        let pre =
            DetectorComponentPre::new(pre).map_err(anyhow::Error::from).with_context(|| {
                format!("component `{name}` does not export tripline:detector/detector@0.2.0")
            })?;
        Ok(Runtime { engine: engine.clone(), pre, name: name.to_string(), limits })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new instance with the component's built-in rules.
    pub fn instantiate(self: &Arc<Self>) -> Result<Detector> {
        let (store, bindings) = self.fresh()?;
        Ok(Detector {
            runtime: Arc::clone(self),
            store,
            bindings,
            sources: None,
            lists: Vec::new(),
            poisoned: false,
        })
    }

    fn fresh(&self) -> Result<(Store<HostState>, DetectorComponent)> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, HostState { limits });
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks());
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to instantiate component `{}`", self.name))?;
        Ok((store, bindings))
    }

    fn deadline_ticks(&self) -> u64 {
        (self.limits.deadline.as_millis() / TICK.as_millis()).max(1) as u64
    }
}

/// One instance of a detector component.
pub struct Detector {
    runtime: Arc<Runtime>,
    store: Store<HostState>,
    bindings: DetectorComponent,
    /// Rules loaded with [`Detector::load_rules`], replayed on restart.
    sources: Option<Vec<RuleSource>>,
    /// The reference lists every `load_rules` passes with the rules.
    lists: Vec<ReferenceList>,
    poisoned: bool,
}

impl Detector {
    pub fn name(&self) -> &str {
        &self.runtime.name
    }

    /// Runs one guest call under the deadline, turning a trap into
    /// [`CallError::Trap`] and marking the instance as needing a restart.
    fn call<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&DetectorComponent, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        if self.poisoned {
            return Err(CallError::Trap(anyhow!(
                "component `{}` trapped earlier and was not restarted",
                self.runtime.name
            )));
        }
        self.store.set_epoch_deadline(self.runtime.deadline_ticks());
        f(&self.bindings, &mut self.store).map_err(|e| {
            let e = anyhow::Error::from(e);
            self.poisoned = true;
            let reason = describe_trap(&e, &self.runtime.limits);
            CallError::Trap(anyhow!(
                "component `{}` trapped in `{what}`: {reason}",
                self.runtime.name
            ))
        })
    }

    /// The loaded rules.
    pub fn rules(&mut self) -> Result<Vec<RuleInfo>, CallError> {
        self.call("rules", |b, s| b.tripline_detector_detector().call_rules(s))
    }

    /// Sets the reference lists that later [`Detector::load_rules`] calls
    /// hand to the component with the rules.
    pub fn set_lists(&mut self, lists: Vec<ReferenceList>) {
        self.lists = lists;
    }

    /// Loads `sources` in place of the current rules, with the lists given
    /// to [`Detector::set_lists`]. The outer error is a trap; the inner
    /// one, the rule errors the guest found.
    pub fn load_rules(
        &mut self,
        sources: &[RuleSource],
    ) -> Result<Result<Vec<RuleInfo>, Vec<RuleError>>, CallError> {
        let lists = std::mem::take(&mut self.lists);
        let result = self.call("load-rules", |b, s| {
            b.tripline_detector_detector().call_load_rules(s, sources, &lists)
        });
        self.lists = lists;
        let result = result?;
        if result.is_ok() {
            self.sources = Some(sources.to_vec());
        }
        Ok(result)
    }

    /// Evaluates a batch of whole NDJSON lines, at the current wall-clock
    /// time; one verdict per line.
    pub fn evaluate(&mut self, batch: &[u8]) -> Result<Vec<Verdict>, CallError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.evaluate_at(batch, now)
    }

    /// Evaluates a batch with `timestamp.current_seconds()` at `now`, in
    /// Unix seconds: the component has no clock of its own.
    pub fn evaluate_at(&mut self, batch: &[u8], now: i64) -> Result<Vec<Verdict>, CallError> {
        self.call("evaluate", |b, s| b.tripline_detector_detector().call_evaluate(s, batch, now))
    }

    /// A second instance of the same component with the same rules and
    /// lists, for another thread.
    pub fn fork(&self) -> Result<Detector> {
        let mut twin = self.runtime.instantiate()?;
        twin.lists = self.lists.clone();
        twin.sources = self.sources.clone();
        twin.reload()?;
        Ok(twin)
    }

    /// Replaces a trapped instance with a fresh one, with the same rules.
    pub fn restart(&mut self) -> Result<()> {
        let (store, bindings) = self.runtime.fresh()?;
        self.store = store;
        self.bindings = bindings;
        self.poisoned = false;
        self.reload()
    }

    /// Loads the rules last loaded into this instance's predecessor, if
    /// any were: they compiled once, so they must compile again.
    fn reload(&mut self) -> Result<()> {
        let Some(sources) = self.sources.clone() else { return Ok(()) };
        match self.load_rules(&sources) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => anyhow::bail!("rules that loaded before no longer load"),
            Err(e) => Err(anyhow!(e)),
        }
    }
}

/// Says why a call trapped, naming the limit when one was hit. The guest's
/// backtrace is left out: it names guest internals, not the problem.
fn describe_trap(err: &anyhow::Error, limits: &Limits) -> String {
    if let Some(wasmtime::Trap::Interrupt) = err.downcast_ref::<wasmtime::Trap>() {
        return format!("deadline of {} ms exceeded", limits.deadline.as_millis());
    }
    let root = err.root_cause().to_string();
    if root.contains("forcing trap when growing memory") {
        return format!("memory limit of {} MiB reached", limits.memory_bytes >> 20);
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => root.lines().next().unwrap_or("unknown failure").to_string(),
    }
}
