//! The Tripline detector component: the engine behind the
//! `tripline:detector` WIT interface, with the default rule pack built in.
//!
//! The component keeps its rules and scratch buffers between calls. It has
//! no I/O of its own: the host sends events in and reads verdicts out.

use std::cell::RefCell;

use tripline_engine::compile::{MetaValue, Rule};
use tripline_engine::diag::{Diagnostic, Source};
use tripline_engine::{Engine, EventError, OutcomeValue, RefList, Scratch};

wit_bindgen::generate!({
    path: "../wit",
    world: "detector-component",
});

use exports::tripline::detector::detector as wit;
use exports::tripline::detector::detector::Guest;

include!(concat!(env!("OUT_DIR"), "/default_pack.rs"));

struct State {
    engine: Engine,
    scratch: Scratch,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Runs `f` on the loaded state, loading the default pack on first use.
fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let state = slot.get_or_insert_with(|| {
            let sources: Vec<Source> =
                DEFAULT_PACK.iter().map(|&(name, text)| Source { name, text }).collect();
            let engine = Engine::load(&sources)
                .expect("the build script checked that the default pack compiles");
            let scratch = engine.scratch();
            State { engine, scratch }
        });
        f(state)
    })
}

fn rule_info(rule: &Rule, sources: &[Source]) -> wit::RuleInfo {
    wit::RuleInfo {
        name: rule.name.clone(),
        source_name: rule.source_name.clone(),
        meta: rule
            .meta
            .iter()
            .map(|(key, value)| wit::MetaEntry {
                key: key.clone(),
                value: match value {
                    MetaValue::Text(t) => wit::MetaValue::Text(t.clone()),
                    MetaValue::Integer(i) => wit::MetaValue::Integer(*i),
                    MetaValue::Boolean(b) => wit::MetaValue::Boolean(*b),
                },
            })
            .collect(),
        placeholders: rule.placeholders.clone(),
        outcomes: rule.outcome_names.clone(),
        windowed: rule.windowed.clone(),
        warnings: rule
            .warnings
            .iter()
            .map(|w| {
                let src = sources.iter().find(|s| s.name == rule.source_name);
                rule_error(src, &rule.source_name, w.clone())
            })
            .collect(),
    }
}

/// A diagnostic as the interface carries it, with its position worked out
/// from the source when the source is at hand.
fn rule_error(src: Option<&Source>, source_name: &str, diag: Diagnostic) -> wit::RuleError {
    let pos = src.map(|s| s.position(diag.span));
    wit::RuleError {
        code: diag.code.as_str().to_string(),
        message: diag.message,
        rule: diag.rule,
        source_name: source_name.to_string(),
        span: wit::SourceSpan {
            line: pos.map_or(0, |p| p.line),
            column: pos.map_or(0, |p| p.column),
            length: pos.map_or(1, |p| p.length),
        },
    }
}

fn outcome(value: &OutcomeValue) -> wit::OutcomeValue {
    match value {
        OutcomeValue::Int(v) => wit::OutcomeValue::Integer(*v),
        OutcomeValue::Float(v) => wit::OutcomeValue::Float(*v),
        OutcomeValue::Text(v) => wit::OutcomeValue::Text(v.clone()),
        OutcomeValue::Bool(v) => wit::OutcomeValue::Boolean(*v),
        OutcomeValue::Ints(v) => wit::OutcomeValue::Integers(v.clone()),
        OutcomeValue::Floats(v) => wit::OutcomeValue::Floats(v.clone()),
        OutcomeValue::Texts(v) => wit::OutcomeValue::Texts(v.clone()),
    }
}

fn event_error(err: EventError) -> wit::EventError {
    match err {
        EventError::Empty => wit::EventError::Empty,
        EventError::NotAnObject => wit::EventError::NotAnObject,
        EventError::TooDeep => wit::EventError::TooDeep(tripline_engine::reader::json::MAX_DEPTH),
        EventError::Malformed(e) => {
            wit::EventError::Malformed(wit::JsonError { offset: e.offset, message: e.to_string() })
        }
    }
}

struct Component;

impl Guest for Component {
    fn rules() -> Vec<wit::RuleInfo> {
        // Warnings were returned by `load-rules`, with their positions; the
        // built-in pack's sources are at hand.
        let pack: Vec<Source> =
            DEFAULT_PACK.iter().map(|&(name, text)| Source { name, text }).collect();
        with_state(|s| s.engine.rules().iter().map(|r| rule_info(r, &pack)).collect())
    }

    fn load_rules(
        sources: Vec<wit::RuleSource>,
        lists: Vec<wit::ReferenceList>,
    ) -> Result<Vec<wit::RuleInfo>, Vec<wit::RuleError>> {
        let srcs: Vec<Source> =
            sources.iter().map(|s| Source { name: &s.name, text: &s.text }).collect();
        let lists: Vec<RefList> =
            lists.into_iter().map(|l| RefList { name: l.name, entries: l.entries }).collect();
        match Engine::load_with_lists(&srcs, &lists) {
            Ok(engine) => {
                let infos = engine.rules().iter().map(|r| rule_info(r, &srcs)).collect();
                let scratch = engine.scratch();
                STATE.with(|cell| *cell.borrow_mut() = Some(State { engine, scratch }));
                Ok(infos)
            }
            Err(errors) => Err(errors
                .into_iter()
                .map(|e| {
                    let src = &srcs[e.source];
                    rule_error(Some(src), src.name, e.diag)
                })
                .collect()),
        }
    }

    fn evaluate(batch: Vec<u8>, now: i64) -> Vec<wit::Verdict> {
        with_state(|state| {
            state.scratch.set_now(now);
            let mut verdicts = Vec::new();
            state.engine.evaluate_batch(&batch, &mut state.scratch, |result| {
                verdicts.push(match result {
                    Ok(matches) => Ok(matches
                        .iter()
                        .map(|m| wit::Detection {
                            rule: m.rule,
                            variables: m.variables.clone(),
                            outcomes: m.outcomes.iter().map(outcome).collect(),
                        })
                        .collect()),
                    Err(err) => Err(event_error(err)),
                });
            });
            verdicts
        })
    }
}

export!(Component);
