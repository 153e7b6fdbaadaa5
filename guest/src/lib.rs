//! The Tripline detector component: the engine behind the
//! `tripline:detector` WIT interface, with the default rule pack built in.
//!
//! The component keeps its rules and scratch buffers between calls. It has
//! no I/O of its own: the host sends events in and reads verdicts out.

use std::cell::RefCell;

use tripline_engine::compile::{MetaValue, Rule};
use tripline_engine::diag::Source;
use tripline_engine::{Engine, EventError, Scratch};

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

fn rule_info(rule: &Rule) -> wit::RuleInfo {
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
        with_state(|s| s.engine.rules().iter().map(rule_info).collect())
    }

    fn load_rules(
        sources: Vec<wit::RuleSource>,
    ) -> Result<Vec<wit::RuleInfo>, Vec<wit::RuleError>> {
        let srcs: Vec<Source> =
            sources.iter().map(|s| Source { name: &s.name, text: &s.text }).collect();
        match Engine::load(&srcs) {
            Ok(engine) => {
                let infos = engine.rules().iter().map(rule_info).collect();
                let scratch = engine.scratch();
                STATE.with(|cell| *cell.borrow_mut() = Some(State { engine, scratch }));
                Ok(infos)
            }
            Err(errors) => Err(errors
                .into_iter()
                .map(|e| {
                    let src = &srcs[e.source];
                    let pos = src.position(e.diag.span);
                    wit::RuleError {
                        code: e.diag.code.as_str().to_string(),
                        message: e.diag.message,
                        rule: e.diag.rule,
                        source_name: src.name.to_string(),
                        span: wit::SourceSpan {
                            line: pos.line,
                            column: pos.column,
                            length: pos.length,
                        },
                    }
                })
                .collect()),
        }
    }

    fn evaluate(batch: Vec<u8>) -> Vec<wit::Verdict> {
        with_state(|state| {
            let mut verdicts = Vec::new();
            state.engine.evaluate_batch(&batch, &mut state.scratch, |result| {
                verdicts.push(match result {
                    Ok(matches) => Ok(matches
                        .iter()
                        .map(|m| wit::Detection { rule: m.rule, variables: m.variables.clone() })
                        .collect()),
                    Err(err) => Err(event_error(err)),
                });
            });
            verdicts
        })
    }
}

export!(Component);
