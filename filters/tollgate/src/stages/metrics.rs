//! The metrics stage's glue: counts each finished request (decisions in `tollgate-metrics`),
//! keeps the in-flight gauge, and publishes the access-log fields as one filter-state value.
//!
//! Series are defined on first use and their ids cached per VM (a define is a host call).
//! The log fields are published in `on_done` (Envoy's `on_log`): Envoy 1.40 runs the filters'
//! `on_log` before the HCM's access loggers, so they see it (docs/envoy-facts.md).

use super::Stage;
use crate::host::{self, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tollgate_core::config::MetricsConfig;
use tollgate_core::facts::{RequestFacts, ResponseFacts};
use tollgate_core::names::metric::{self, Kind, Metric, Naming};
use tollgate_metrics::{Recorder, Sink};

/// Per-VM state of the metrics stage.
pub struct MetricsRoot {
    recorder: RefCell<Recorder>,
    /// The recorder's names, kept apart: `emit` runs while the recorder is borrowed.
    naming: &'static Naming,
    /// Stat name → metric id, for every series defined so far.
    ids: RefCell<HashMap<String, u32>>,
    /// Hash of (metric, label values) → the series with that hash and their ids: a series
    /// seen before costs one lookup and no allocation.
    series: RefCell<HashMap<u64, Vec<Series>>>,
    /// The in-flight gauge, defined at configuration.
    active_id: Option<u32>,
    access_log: bool,
}

impl MetricsRoot {
    /// The stage's root from its configuration section; an error fails plugin configuration.
    pub fn new(config: &MetricsConfig) -> Result<Self, String> {
        let recorder = Recorder::new(config).map_err(|e| e.to_string())?;
        let naming = recorder.naming();
        let active = naming.def(Metric::Active);
        Ok(Self {
            recorder: RefCell::new(recorder),
            naming,
            ids: RefCell::new(HashMap::new()),
            series: RefCell::new(HashMap::new()),
            active_id: host::define_metric(
                MetricType::Gauge,
                &metric::stat_name(naming, active, &[]),
            ),
            access_log: config.access_log,
        })
    }

    /// The id of the series `name` of `kind`, defined on first use.
    fn id(&self, kind: Kind, name: String) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(&name) {
            return Some(*id);
        }
        let host_kind = match kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Histogram => MetricType::Histogram,
        };
        let id = host::define_metric(host_kind, &name)?;
        self.ids.borrow_mut().insert(name, id);
        Some(id)
    }

    fn emit(&self, metric: Metric, values: &[&str], value: u64) {
        let naming = self.naming;
        let def = naming.def(metric);
        let hash = series_hash(metric, values);
        let known = self.series.borrow().get(&hash).and_then(|candidates| {
            candidates
                .iter()
                .find(|s| {
                    s.metric == metric
                        && s.values
                            .iter()
                            .map(String::as_str)
                            .eq(values.iter().copied())
                })
                .map(|s| s.id)
        });
        let id = match known {
            Some(id) => id,
            None => {
                let Some(id) = self.id(def.kind, metric::stat_name(naming, def, values)) else {
                    return;
                };
                self.series
                    .borrow_mut()
                    .entry(hash)
                    .or_default()
                    .push(Series {
                        metric,
                        values: values.iter().map(|v| v.to_string()).collect(),
                        id,
                    });
                id
            }
        };
        match def.kind {
            Kind::Histogram => host::record_metric(id, value),
            _ => host::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX)),
        }
    }

    fn active(&self, delta: i64) {
        if let Some(id) = self.active_id {
            host::increment_metric(id, delta);
        }
    }
}

/// One defined series: its metric, label values and the host's id.
struct Series {
    metric: Metric,
    values: Box<[String]>,
    id: u32,
}

/// FNV-1a over the metric and its label values (each closed by a 0xff, which UTF-8 never has).
fn series_hash(metric: Metric, values: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(metric as u8);
    for value in values {
        value.bytes().for_each(&mut eat);
        eat(0xff);
    }
    hash
}

/// The recorder's observations, straight to the host.
struct Emit<'a>(&'a MetricsRoot);

impl Sink for Emit<'_> {
    fn observe(&mut self, metric: Metric, values: &[&str], value: u64) {
        self.0.emit(metric, values, value);
    }
}

/// Per-request state of the metrics stage.
pub struct MetricsStage {
    root: Rc<MetricsRoot>,
    /// Counted in the in-flight gauge (its headers reached this stage).
    in_flight: bool,
}

impl MetricsStage {
    /// The stage's part of a new request.
    pub fn new(root: &Rc<MetricsRoot>) -> Self {
        Self {
            root: Rc::clone(root),
            in_flight: false,
        }
    }

    fn publish_log(&self, facts: &RequestFacts, response: &ResponseFacts) {
        if !self.root.access_log {
            return;
        }
        let record = self.root.recorder.borrow().log_record(facts, response);
        let mut tail = Vec::with_capacity(256);
        record.write_json_tail(&mut tail);
        host::set_property(metric::LOG_PROPERTY, &tail);
    }
}

impl Stage for MetricsStage {
    fn on_request_headers(&mut self, _facts: &RequestFacts) -> tollgate_core::stage::Step {
        self.root.active(1);
        self.in_flight = true;
        tollgate_core::stage::Step::Continue
    }

    fn wants_response_body(&self) -> bool {
        true // the usage is in the body: the pipeline observes it for us
    }

    fn on_done(&mut self, facts: &RequestFacts, response: &ResponseFacts) {
        if self.in_flight {
            self.root.active(-1);
            self.in_flight = false;
        }
        let mut sink = Emit(&self.root);
        self.root
            .recorder
            .borrow_mut()
            .observe(facts, response, host::now_ms(), &mut sink);
        self.publish_log(facts, response);
    }
}
