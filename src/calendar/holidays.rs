//! National public holidays computed by rule: fixed dates, dates counted from Easter Sunday
//! (the anonymous Gregorian algorithm), and Chile's holidays moved to a Monday.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The nations whose public holidays are built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nation {
    /// Germany, nationwide holidays only (no state's).
    De,
    /// Spain, national holidays only (no region's).
    Es,
    /// Chile, the holidays fixed by law (not the solstice holiday, not October 31).
    Cl,
}

/// Easter Sunday of `year` (Gregorian), by the anonymous Gregorian algorithm (Meeus, Jones,
/// Butcher); `None` only where chrono has no such date.
pub fn easter(year: i32) -> Option<NaiveDate> {
    let y = i64::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let n = h + l - 7 * m + 114;
    // month is 3 or 4 and day 1..=31 whatever the year: the casts cannot truncate.
    NaiveDate::from_ymd_opt(year, (n / 31) as u32, (n % 31 + 1) as u32)
}

/// Fixed `(month, day)` holidays.
const DE_FIXED: &[(u32, u32)] = &[(1, 1), (5, 1), (10, 3), (12, 25), (12, 26)];
const ES_FIXED: &[(u32, u32)] = &[
    (1, 1),
    (1, 6),
    (5, 1),
    (8, 15),
    (10, 12),
    (11, 1),
    (12, 6),
    (12, 8),
    (12, 25),
];
const CL_FIXED: &[(u32, u32)] = &[
    (1, 1),
    (5, 1),
    (5, 21),
    (7, 16),
    (8, 15),
    (9, 18),
    (9, 19),
    (11, 1),
    (12, 8),
    (12, 25),
];
/// Holidays counted in days from Easter Sunday.
/// DE: Good Friday, Easter Monday, Ascension, Whit Monday.
const DE_EASTER: &[i64] = &[-2, 1, 39, 50];
/// ES: Good Friday.
const ES_EASTER: &[i64] = &[-2];
/// CL: Good Friday, Holy Saturday.
const CL_EASTER: &[i64] = &[-2, -1];
/// CL: Saint Peter and Saint Paul (June 29) and the Meeting of Two Worlds (October 12), which
/// Ley 19.668 moves to a Monday.
const CL_MOVED: &[(u32, u32)] = &[(6, 29), (10, 12)];

/// A nation's holidays: fixed `(month, day)`s, days counted from Easter Sunday, and fixed
/// dates moved to a Monday (Chile's Ley 19.668).
struct Rules {
    fixed: &'static [(u32, u32)],
    easter: &'static [i64],
    moved: &'static [(u32, u32)],
}

impl Nation {
    fn rules(self) -> Rules {
        match self {
            Nation::De => Rules {
                fixed: DE_FIXED,
                easter: DE_EASTER,
                moved: &[],
            },
            Nation::Es => Rules {
                fixed: ES_FIXED,
                easter: ES_EASTER,
                moved: &[],
            },
            Nation::Cl => Rules {
                fixed: CL_FIXED,
                easter: CL_EASTER,
                moved: CL_MOVED,
            },
        }
    }

    pub(super) fn is_holiday(self, date: NaiveDate) -> bool {
        let Rules {
            fixed,
            easter: easter_offsets,
            moved,
        } = self.rules();
        let month_day = (date.month(), date.day());
        if fixed.contains(&month_day) {
            return true;
        }
        if moved.iter().any(|&(m, d)| {
            NaiveDate::from_ymd_opt(date.year(), m, d).and_then(moved_to_monday) == Some(date)
        }) {
            return true;
        }
        // Every Easter-based holiday falls in March to June: no need to compute Easter else.
        if !(3..=6).contains(&date.month()) {
            return false;
        }
        let Some(easter) = easter(date.year()) else {
            return false;
        };
        let offset = date.signed_duration_since(easter).num_days();
        easter_offsets.contains(&offset)
    }
}

/// Ley 19.668 (Chile): a holiday on a Tuesday, Wednesday or Thursday is kept on the Monday of
/// that week, one on a Friday on the Monday after; on a Monday or a weekend it stays.
fn moved_to_monday(date: NaiveDate) -> Option<NaiveDate> {
    match date.weekday() {
        Weekday::Tue => date.checked_sub_days(Days::new(1)),
        Weekday::Wed => date.checked_sub_days(Days::new(2)),
        Weekday::Thu => date.checked_sub_days(Days::new(3)),
        Weekday::Fri => date.checked_add_days(Days::new(3)),
        Weekday::Mon | Weekday::Sat | Weekday::Sun => Some(date),
    }
}
