//! List pages bounded by count and by bytes, filled from the store a few rows at a time.

use serde::Serialize;

/// Most rows read per query while filling a list page, and the rows of the first query.
const LIST_CHUNK: usize = 32;
const FIRST_CHUNK: usize = 2;

/// One page of a list: its items, and whether more follow the last.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl<T> Page<T> {
    /// The cursor of the next page (the key of this page's last item), if one may follow.
    pub fn next_before(&self, key: impl Fn(&T) -> String) -> Option<String> {
        if self.more {
            self.items.last().map(key)
        } else {
            None
        }
    }
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            more: false,
        }
    }
}

/// Fills a page, newest first, a chunk of rows at a time: at most `limit` items, and none
/// added once their sizes pass `max_bytes` (at least one). The caller asks for
/// [`PageFill::wanted`] rows older than [`PageFill::before`] and hands them to
/// [`PageFill::take`] until it says the page is done.
pub(super) struct PageFill<T> {
    page: Page<T>,
    bytes: usize,
    limit: usize,
    max_bytes: usize,
    pub(super) before: Option<String>,
}

impl<T> PageFill<T> {
    pub(super) fn new(limit: u32, max_bytes: usize, before: Option<String>) -> Self {
        Self {
            page: Page::default(),
            bytes: 0,
            limit: limit as usize,
            max_bytes,
            before,
        }
    }

    /// Rows to fetch next: one more than the page can take, to know whether more follow, by
    /// count and by the bytes left at the rows' average size so far; a few to begin with, so
    /// that rows of the largest size cost a few of them, not a whole chunk.
    pub(super) fn wanted(&self) -> usize {
        let by_count = self.limit + 1 - self.page.items.len();
        let by_bytes = match self.page.items.len() {
            0 => FIRST_CHUNK,
            n => self.max_bytes.saturating_sub(self.bytes) / (self.bytes / n).max(1) + 1,
        };
        by_count.min(by_bytes).clamp(1, LIST_CHUNK)
    }

    /// Adds fetched rows (`wanted` were asked for); `measure` gives a row's JSON size and id.
    /// `Some(page)` once it is complete.
    pub(super) fn take(
        &mut self,
        rows: Vec<T>,
        wanted: usize,
        measure: impl Fn(&T) -> (usize, String),
    ) -> Option<Page<T>> {
        let exhausted = rows.len() < wanted;
        for item in rows {
            let items = self.page.items.len();
            if items >= self.limit || (items > 0 && self.bytes >= self.max_bytes) {
                self.page.more = true;
                return Some(std::mem::take(&mut self.page));
            }
            let (size, id) = measure(&item);
            self.bytes += size;
            self.before = Some(id);
            self.page.items.push(item);
        }
        exhausted.then(|| std::mem::take(&mut self.page))
    }
}

/// Bytes of `value` as JSON, counted without building the text.
pub(super) fn json_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("stored values serialize");
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a page from `rows` (id, size), newest first, as a store would; returns the ids
    /// of the page, whether more follow, and the row counts asked for.
    fn fill(rows: &[(u32, usize)], limit: u32, max_bytes: usize) -> (Vec<u32>, bool, Vec<usize>) {
        let mut fill = PageFill::new(limit, max_bytes, None);
        let mut asked = Vec::new();
        loop {
            let wanted = fill.wanted();
            asked.push(wanted);
            let older: Vec<(u32, usize)> = rows
                .iter()
                .filter(|(id, _)| fill.before.as_ref().is_none_or(|b| id.to_string() < *b))
                .take(wanted)
                .copied()
                .collect();
            let measure = |r: &(u32, usize)| (r.1, r.0.to_string());
            if let Some(page) = fill.take(older, wanted, measure) {
                return (page.items.iter().map(|r| r.0).collect(), page.more, asked);
            }
        }
    }

    #[test]
    fn pages_stop_at_the_count_or_past_the_bytes_and_say_whether_more_follow() {
        let small: Vec<(u32, usize)> = (0..9).rev().map(|i| (i, 10)).collect();
        assert_eq!(fill(&small, 3, 1000).0, [8, 7, 6]);
        assert!(fill(&small, 3, 1000).1, "more after the third");
        assert_eq!(fill(&small, 100, 25), (vec![8, 7, 6], true, vec![2, 1, 1]));
        assert!(!fill(&small, 9, 1000).1, "exactly all: none follow");
        assert_eq!(fill(&[], 50, 1000), (vec![], false, vec![2]));
        let huge = [(3, 5000), (2, 5000), (1, 5000)];
        assert_eq!(
            fill(&huge, 50, 1000),
            (vec![3], true, vec![2]),
            "one item even past the budget, and only a couple of rows read"
        );
    }

    #[test]
    fn json_len_counts_the_serialized_bytes() {
        let value = serde_json::json!({"a": [1, 2, "x"]});
        assert_eq!(json_len(&value), value.to_string().len());
    }
}
