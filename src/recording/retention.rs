//! Which recordings the retention sweep deletes: those stored longer ago than their
//! company's retention period. Pure (the time is an argument); `Recordings::sweep_retention`
//! is the shell that queries and deletes.

use crate::ids::CompanyId;
use crate::settings::RecordingPolicy;
use crate::time::UnixMs;

/// A day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Recordings stored before this instant are due under a retention of `days`.
pub fn cutoff(now: UnixMs, days: u32) -> UnixMs {
    now.saturating_sub(i64::from(days) * DAY_MS)
}

/// Whether a recording stored at `created_at` is due for deletion at `now`.
pub fn is_due(created_at: UnixMs, policy: RecordingPolicy, now: UnixMs) -> bool {
    created_at < cutoff(now, policy.retention_days)
}

/// One company's part of a sweep: delete its recordings stored before `cutoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompanySweep {
    pub company: CompanyId,
    pub policy: RecordingPolicy,
    pub cutoff: UnixMs,
}

/// The sweep at `now` over every company and its policy.
pub fn plan(now: UnixMs, companies: impl IntoIterator<Item = (CompanyId, RecordingPolicy)>) -> Vec<CompanySweep> {
    companies
        .into_iter()
        .map(|(company, policy)| CompanySweep { company, policy, cutoff: cutoff(now, policy.retention_days) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = 1_764_028_800_000;

    fn days(n: u32) -> RecordingPolicy {
        RecordingPolicy { retention_days: n }
    }

    #[test]
    fn a_recording_is_due_once_it_is_older_than_the_retention() {
        let p = RecordingPolicy::default();
        assert_eq!(p.retention_days, 90);
        assert!(!is_due(NOW - 90 * DAY_MS, p, NOW), "exactly 90 days old: kept");
        assert!(is_due(NOW - 90 * DAY_MS - 1, p, NOW));
        assert!(!is_due(NOW - 89 * DAY_MS, p, NOW));
        assert!(is_due(NOW - 2 * DAY_MS, days(1), NOW));
        assert!(!is_due(NOW, days(1), NOW));
    }

    #[test]
    fn each_company_is_swept_with_its_own_retention() {
        let (a, b) = (CompanyId::new(), CompanyId::new());
        let sweep = plan(NOW, [(a, days(7)), (b, RecordingPolicy::default())]);
        assert_eq!(sweep.len(), 2);
        assert_eq!(sweep[0], CompanySweep { company: a, policy: days(7), cutoff: NOW - 7 * DAY_MS });
        assert_eq!(sweep[1].cutoff, NOW - 90 * DAY_MS);
    }

    #[test]
    fn the_cutoff_never_overflows() {
        assert_eq!(cutoff(i64::MIN + 5, 3650), i64::MIN);
    }
}
