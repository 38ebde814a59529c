//! When a job fires: cron expressions in a time zone, fluent intervals, one-shots.

use crate::{Error, Result};
use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::fmt;
use std::time::Duration;

/// When a job runs.
///
/// ```
/// use corekit::scheduler::{Schedule, every};
///
/// let nightly = Schedule::cron("30 2 * * *")?.in_timezone("Europe/Berlin")?;
/// let with_seconds = Schedule::cron("*/10 * * * * *")?;
/// let hourly = Schedule::cron("@hourly")?;
/// let poll = every(30).seconds();
/// let report = every(1).day().at("03:00")?;
/// # Ok::<(), corekit::Error>(())
/// ```
#[derive(Clone)]
pub struct Schedule {
    kind: Kind,
    /// `None`: the scheduler's zone (UTC unless configured).
    tz: Option<Tz>,
}

#[derive(Clone)]
enum Kind {
    Cron { cron: Box<Cron>, expr: String },
    Every(Duration),
    Daily { days: u32, at: NaiveTime },
    After(Duration),
    At(DateTime<Utc>),
}

impl Schedule {
    /// A cron schedule: 5 fields (`min hour dom mon dow`), 6 with seconds first, or an alias
    /// (`@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`). Evaluated in UTC unless
    /// [`in_timezone`](Self::in_timezone) says otherwise.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) quoting the expression and saying
    /// what is wrong with it.
    pub fn cron(expr: &str) -> Result<Self> {
        let trimmed = expr.trim();
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(Error::invalid_input(format!(
                "cron expression {expr:?} has {fields} fields; expected 5 (minute hour \
                 day-of-month month day-of-week), 6 (seconds first) or an alias like @hourly"
            )));
        }
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser.parse(trimmed).map_err(|e| {
            Error::invalid_input(format!("cron expression {expr:?} is invalid: {e}"))
        })?;
        Ok(Self {
            kind: Kind::Cron {
                cron: Box::new(cron),
                expr: trimmed.to_owned(),
            },
            tz: None,
        })
    }

    /// Runs once, `delay` after the job is added.
    pub fn after(delay: Duration) -> Self {
        Self {
            kind: Kind::After(delay),
            tz: None,
        }
    }

    /// Runs once, at `at` (at once if that is already past).
    pub fn once_at(at: DateTime<Utc>) -> Self {
        Self {
            kind: Kind::At(at),
            tz: None,
        }
    }

    /// Evaluates the schedule in an IANA time zone (`"America/New_York"`). Cron and daily
    /// schedules follow its wall clock across daylight-saving changes: a time skipped by a
    /// spring-forward runs once, at the first instant after the gap; a time repeated by a
    /// fall-back runs once, at its first occurrence.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) for a name not in the IANA database.
    pub fn in_timezone(mut self, name: &str) -> Result<Self> {
        self.tz = Some(parse_tz(name)?);
        Ok(self)
    }

    /// For `every(n).days()`: the wall-clock time of day (`"03:00"` or `"03:00:30"`).
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) for a bad time or a schedule that is
    /// not a whole number of days.
    pub fn at(self, time: &str) -> Result<Self> {
        let at = NaiveTime::parse_from_str(time, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M:%S"))
            .map_err(|_| {
                Error::invalid_input(format!("time of day {time:?} is not HH:MM or HH:MM:SS"))
            })?;
        match self.kind {
            Kind::Every(period) if period.as_secs() % 86_400 == 0 && period.subsec_nanos() == 0 => {
                let days = u32::try_from(period.as_secs() / 86_400).unwrap_or(u32::MAX);
                Ok(Self {
                    kind: Kind::Daily { days, at },
                    tz: self.tz,
                })
            }
            _ => Err(Error::invalid_input(format!(
                "at({time:?}) needs a schedule of whole days, like every(1).day(); this is {self}"
            ))),
        }
    }

    /// The next run strictly after `after`, given that the job was added at `added`; `None`
    /// when a one-shot has already run.
    pub fn next_after(&self, after: DateTime<Utc>, added: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron { cron, .. } => {
                let local = after.with_timezone(&self.zone());
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            Kind::Every(period) => {
                // Aligned on the Unix epoch, not on when the job was added: every instance of
                // a fleet ticks at the same instants, so a single-instance lock keyed by the
                // tick matches across them, and ticks do not drift with run time.
                let period = i64::try_from(period.as_nanos()).ok().filter(|p| *p > 0)?;
                let now = after.timestamp_nanos_opt()?;
                let next = now.div_euclid(period).checked_add(1)?.checked_mul(period)?;
                Some(DateTime::from_timestamp_nanos(next))
            }
            Kind::Daily { days, at } => {
                let tz = self.zone();
                let local_after = after.with_timezone(&tz);
                let mut date = local_after.date_naive();
                // Day n is counted from the epoch's date, for the same reason as intervals.
                let first = chrono::NaiveDate::default();
                // Check today and following days for the first matching day at `at`.
                for _ in 0..(*days as i64 * 2 + 3) {
                    let day_index = (date - first).num_days();
                    if day_index >= 0
                        && day_index % i64::from((*days).max(1)) == 0
                        && let Some(t) = resolve_local(&tz, date.and_time(*at))
                        && t > after
                    {
                        return Some(t);
                    }
                    date = date.succ_opt()?;
                }
                None
            }
            Kind::After(delay) => {
                let at = added + chrono::Duration::from_std(*delay).ok()?;
                (at > after).then_some(at)
            }
            Kind::At(at) => (*at > after || after <= added).then_some((*at).max(added)),
        }
    }

    /// True for [`after`](Self::after) and [`once_at`](Self::once_at) schedules.
    pub fn is_one_shot(&self) -> bool {
        matches!(self.kind, Kind::After(_) | Kind::At(_))
    }
}

/// The UTC instant of a local wall time: the first one in a fall-back overlap, the first
/// instant after the gap in a spring-forward.
fn resolve_local(tz: &Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Walk forward minute by minute to the end of the gap (gaps are at most a few hours).
            let mut probe = local;
            for _ in 0..(4 * 60) {
                probe += chrono::Duration::minutes(1);
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                    tz.from_local_datetime(&probe)
                {
                    let t = t.with_timezone(&Utc);
                    // The first real instant after the gap is the top of that minute.
                    return Some(
                        t - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&probe))),
                    );
                }
            }
            None
        }
    }
}

pub(super) fn parse_tz(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        Error::invalid_input(format!(
            "time zone {name:?} is not an IANA name like \"UTC\" or \"Europe/Berlin\""
        ))
    })
}

impl Schedule {
    /// The schedule in the scheduler's zone, unless it was given its own (an explicit
    /// `in_timezone("UTC")` stays UTC).
    pub(super) fn with_default_tz(mut self, tz: Tz) -> Self {
        self.tz.get_or_insert(tz);
        self
    }

    fn zone(&self) -> Tz {
        self.tz.unwrap_or(Tz::UTC)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cron { expr, .. } => write!(f, "cron {expr:?}")?,
            Kind::Every(d) => write!(f, "every {}", humantime::format_duration(*d))?,
            Kind::Daily { days, at } => write!(f, "every {days} day(s) at {at}")?,
            Kind::After(d) => write!(f, "once after {}", humantime::format_duration(*d))?,
            Kind::At(t) => write!(f, "once at {t}")?,
        }
        if let Some(tz) = self.tz.filter(|tz| *tz != Tz::UTC) {
            write!(f, " ({})", tz.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({self})")
    }
}

/// Starts a fluent interval: `every(30).seconds()`, `every(1).hour()`, `every(1).day().at("03:00")`.
///
/// Interval ticks are aligned on the Unix epoch, not on when the job was added:
/// `every(15).minutes()` runs at :00, :15, :30 and :45, and every instance of a service ticks
/// at the same instants, which is what lets [`Job::single_instance`](crate::scheduler::Job::single_instance)
/// pick one of them per tick. The first run is the next aligned tick after the job is added.
pub fn every(n: u64) -> Every {
    Every(n)
}

/// A count waiting for its unit; from [`every`].
#[derive(Debug, Clone, Copy)]
pub struct Every(u64);

impl Every {
    fn of(self, unit_secs: u64) -> Schedule {
        Schedule {
            kind: Kind::Every(Duration::from_secs(self.0.saturating_mul(unit_secs))),
            tz: None,
        }
    }
    /// Every n seconds.
    pub fn seconds(self) -> Schedule {
        self.of(1)
    }
    /// Every n minutes.
    pub fn minutes(self) -> Schedule {
        self.of(60)
    }
    /// Every n hours.
    pub fn hours(self) -> Schedule {
        self.of(3600)
    }
    /// Every n days, at midnight UTC (add [`Schedule::at`] for a time of day in a zone).
    pub fn days(self) -> Schedule {
        self.of(86_400)
    }
    /// `every(1).second()`.
    pub fn second(self) -> Schedule {
        self.seconds()
    }
    /// `every(1).minute()`.
    pub fn minute(self) -> Schedule {
        self.minutes()
    }
    /// `every(1).hour()`.
    pub fn hour(self) -> Schedule {
        self.hours()
    }
    /// `every(1).day()`.
    pub fn day(self) -> Schedule {
        self.days()
    }
    /// Every n milliseconds (sub-second polling).
    pub fn millis(self) -> Schedule {
        Schedule {
            kind: Kind::Every(Duration::from_millis(self.0)),
            tz: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn runs(s: &Schedule, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let (from, to) = (utc(from), utc(to));
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = s.next_after(t, from) {
            if next > to {
                break;
            }
            out.push(next);
            t = next;
        }
        out
    }

    #[test]
    fn five_six_fields_and_aliases() {
        let s = Schedule::cron("*/15 * * * *").unwrap();
        assert_eq!(
            runs(&s, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z").len(),
            4
        );
        let s = Schedule::cron("*/10 * * * * *").unwrap();
        assert_eq!(
            runs(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z").len(),
            6
        );
        let s = Schedule::cron("@hourly").unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T00:10:00Z"), utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-01T01:00:00Z"))
        );
    }

    #[test]
    fn invalid_expressions_are_quoted_and_explained() {
        for (expr, says) in [
            ("61 * * * *", "61 * * * *"),
            ("* * *", "has 3 fields"),
            ("* * * * * * * *", "has 8 fields"),
            ("a b c d e", "a b c d e"),
            ("", "has 0 fields"),
        ] {
            let err = Schedule::cron(expr).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            let msg = err.to_string();
            assert!(msg.contains(says), "{expr:?}: {msg}");
            assert!(
                msg.contains(&format!("{expr:?}")),
                "quotes the expression: {msg}"
            );
        }
        let err = Schedule::cron("0 0 * * *")
            .unwrap()
            .in_timezone("Mars/Olympus")
            .unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"));
    }

    #[test]
    fn berlin_spring_forward_runs_a_skipped_time_once() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let s = Schedule::cron("30 2 * * *")
            .unwrap()
            .in_timezone("Europe/Berlin")
            .unwrap();
        let got = runs(&s, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z");
        assert_eq!(
            got,
            vec![
                utc("2026-03-28T01:30:00Z"), // 02:30 CET
                utc("2026-03-29T01:00:00Z"), // 03:00 CEST, first instant after the gap
                utc("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
    }

    #[test]
    fn berlin_fall_back_runs_a_repeated_time_once() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let s = Schedule::cron("30 2 * * *")
            .unwrap()
            .in_timezone("Europe/Berlin")
            .unwrap();
        let got = runs(&s, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z");
        assert_eq!(
            got,
            vec![
                utc("2026-10-24T00:30:00Z"),
                utc("2026-10-25T00:30:00Z"), // the first 02:30 (CEST)
                utc("2026-10-26T01:30:00Z"),
            ]
        );
    }

    #[test]
    fn new_york_transitions() {
        // 2026-03-08: 02:00 EST -> 03:00 EDT. 2026-11-01: 02:00 EDT -> 01:00 EST.
        let s = Schedule::cron("30 2 * * *")
            .unwrap()
            .in_timezone("America/New_York")
            .unwrap();
        let spring = runs(&s, "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z");
        assert_eq!(
            spring,
            vec![utc("2026-03-08T07:00:00Z"), utc("2026-03-09T06:30:00Z")]
        );
        let s = Schedule::cron("30 1 * * *")
            .unwrap()
            .in_timezone("America/New_York")
            .unwrap();
        let fall = runs(&s, "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z");
        assert_eq!(
            fall,
            vec![utc("2026-11-01T05:30:00Z"), utc("2026-11-02T06:30:00Z")]
        );
    }

    #[test]
    fn daily_at_follows_the_wall_clock() {
        let s = every(1)
            .day()
            .at("02:30")
            .unwrap()
            .in_timezone("Europe/Berlin")
            .unwrap();
        let got = runs(&s, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z");
        assert_eq!(
            got,
            vec![
                utc("2026-03-28T01:30:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-30T00:30:00Z")
            ]
        );
        let s = every(1)
            .day()
            .at("02:30")
            .unwrap()
            .in_timezone("Europe/Berlin")
            .unwrap();
        let got = runs(&s, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z");
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(every(1).hour().at("03:00").is_err());
        assert!(every(1).day().at("25:00").is_err());
    }

    #[test]
    fn intervals_and_one_shots() {
        let s = every(10).seconds();
        let got = runs(&s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:35Z");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], utc("2026-01-01T00:00:10Z"));
        let s = Schedule::after(Duration::from_secs(5));
        assert!(s.is_one_shot());
        assert_eq!(
            runs(&s, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            vec![utc("2026-01-01T00:00:05Z")]
        );
        let s = Schedule::once_at(utc("2026-01-01T06:00:00Z"));
        assert_eq!(
            runs(&s, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            vec![utc("2026-01-01T06:00:00Z")]
        );
        assert_eq!(every(2).hours().to_string(), "every 2h");
        assert_eq!(
            Schedule::cron("0 3 * * *")
                .unwrap()
                .in_timezone("Europe/Berlin")
                .unwrap()
                .to_string(),
            "cron \"0 3 * * *\" (Europe/Berlin)"
        );
    }
}
