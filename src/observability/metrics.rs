//! Metrics: helpers for a service's own instruments on the global meter, and the recorder that
//! measures every instrumented call of corekit's modules.

use crate::Error;
use crate::instrument::{Call, Module, Recorder};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};

/// A counter on the global meter `corekit` (installed by [`init`](super::init)).
pub fn counter(name: &'static str) -> Counter<u64> {
    opentelemetry::global::meter("corekit")
        .u64_counter(name)
        .build()
}

/// An up-down counter on the global meter.
pub fn up_down_counter(name: &'static str) -> UpDownCounter<i64> {
    opentelemetry::global::meter("corekit")
        .i64_up_down_counter(name)
        .build()
}

/// A histogram on the global meter.
pub fn histogram(name: &'static str) -> Histogram<f64> {
    opentelemetry::global::meter("corekit")
        .f64_histogram(name)
        .build()
}

/// A gauge on the global meter.
pub fn gauge(name: &'static str) -> Gauge<f64> {
    opentelemetry::global::meter("corekit")
        .f64_gauge(name)
        .build()
}

/// The metrics every instrumented call of corekit's modules records into, made once from the
/// meter provider [`Telemetry::install`](super::Telemetry::install) installs: one histogram and
/// error counter per module.
pub(super) struct ModuleMetrics {
    instruments: Vec<(Module, Histogram<f64>, Counter<u64>)>,
}

impl ModuleMetrics {
    pub(super) fn new(meter: &Meter) -> Self {
        let modules = [
            Module::Cache,
            Module::Queue,
            Module::Storage,
            Module::Email,
            Module::Scheduler,
        ];
        let instruments = modules
            .into_iter()
            .map(|m| {
                let (duration, errors, _, _) = metric_names(m);
                (
                    m,
                    meter.f64_histogram(duration).with_unit("s").build(),
                    meter.u64_counter(errors).build(),
                )
            })
            .collect();
        Self { instruments }
    }
}

/// The names a module's calls are recorded under: duration histogram, error counter, and the
/// attribute keys for the backend and the operation (OpenTelemetry's semantic conventions
/// where one exists).
fn metric_names(module: Module) -> (&'static str, &'static str, &'static str, &'static str) {
    match module {
        Module::Cache => (
            "db.client.operation.duration",
            "corekit.db.errors",
            "db.system",
            "db.operation.name",
        ),
        Module::Queue => (
            "messaging.client.operation.duration",
            "corekit.messaging.errors",
            "messaging.system",
            "messaging.operation.name",
        ),
        Module::Email => (
            "corekit.email.send.duration",
            "corekit.email.errors",
            "email.system",
            "email.operation.name",
        ),
        Module::Storage => (
            "corekit.storage.operation.duration",
            "corekit.storage.errors",
            "storage.system",
            "storage.operation.name",
        ),
        _ => (
            "corekit.scheduler.operation.duration",
            "corekit.scheduler.errors",
            "scheduler.system",
            "scheduler.operation.name",
        ),
    }
}

impl Recorder for ModuleMetrics {
    fn record(&self, call: &Call, elapsed: std::time::Duration, error: Option<&Error>) {
        let (_, _, system_key, op_key) = metric_names(call.module);
        let Some((_, duration, errors)) = self.instruments.iter().find(|i| i.0 == call.module)
        else {
            return;
        };
        let attrs = [
            KeyValue::new(system_key, call.system),
            KeyValue::new(op_key, call.operation),
        ];
        duration.record(elapsed.as_secs_f64(), &attrs);
        if let Some(e) = error {
            let [a, b] = attrs;
            errors.add(
                1,
                &[a, b, KeyValue::new("error.type", format!("{:?}", e.kind()))],
            );
        }
    }
}
