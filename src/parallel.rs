//! Independent work on many items, spread over the machine's cores, results in the items'
//! order: compile reads and parses each policy file, and renders and compares each file of
//! generated/, on its own, so that 10,000 policies take a fraction of the time they take
//! one after another, and what is reported comes out as if they had.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items a thread takes at a time: few enough that a thread slowed down by other work on
/// the machine leaves the rest to the others, enough that taking them costs nothing.
const BATCH: usize = 16;

/// Below this many items per thread, a thread costs more than it saves.
const MIN_ITEMS_PER_THREAD: usize = 32;

/// `f` of every item, in the items' order, computed on up to the machine's cores
/// (`std::thread::available_parallelism`). The calling thread works too; few items are
/// done on it alone. A panic in `f` ends the call with that panic once every thread
/// has stopped.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / MIN_ITEMS_PER_THREAD)
        .max(1);
    map_on(threads, items, f)
}

/// `map` on `threads` threads (the calling one included).
fn map_on<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    // Each thread takes the next batch not yet taken, and keeps its results with their
    // places; they are put back in order at the end.
    let work = || {
        let mut done = Vec::new();
        loop {
            let start = next.fetch_add(BATCH, Ordering::Relaxed);
            if start >= items.len() {
                return done;
            }
            let end = (start + BATCH).min(items.len());
            done.extend((start..end).map(|i| (i, f(&items[i]))));
        }
    };
    let outcomes: Vec<std::thread::Result<Vec<(usize, R)>>> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let own = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        std::iter::once(own)
            .chain(helpers.into_iter().map(|h| h.join()))
            .collect()
    });
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for outcome in outcomes {
        match outcome {
            Ok(part) => part
                .into_iter()
                .for_each(|(i, result)| slots[i] = Some(result)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    slots
        .into_iter()
        .map(|r| r.expect("every item was mapped once"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{map, map_on};

    #[test]
    fn results_keep_the_items_order() {
        let items: Vec<u64> = (0..10_007).collect();
        let expected: Vec<u64> = items.iter().map(|i| i * 3 + 1).collect();
        for threads in [1, 2, 3, 8] {
            assert_eq!(map_on(threads, &items, |i| i * 3 + 1), expected);
        }
        assert_eq!(map(&items, |i| i * 3 + 1), expected);
    }

    #[test]
    fn uneven_work_still_comes_back_in_order() {
        // Early items are slow, so the threads finish them out of order.
        let items: Vec<usize> = (0..200).collect();
        let out = map_on(4, &items, |&i| {
            if i < 20 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            i.to_string()
        });
        let expected: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn no_items_and_one_item() {
        assert_eq!(map_on(4, &[] as &[u32], |i| *i), Vec::<u32>::new());
        assert_eq!(map(&[] as &[u32], |i| *i), Vec::<u32>::new());
        assert_eq!(map_on(4, &[7], |i| i + 1), vec![8]);
    }

    #[test]
    fn a_panic_on_any_thread_reaches_the_caller() {
        let caller = std::thread::current().id();
        let items: Vec<usize> = (0..300).collect();
        // The first item the calling thread takes, then the first one another thread takes.
        for on_caller in [true, false] {
            let caught = std::panic::catch_unwind(|| {
                map_on(3, &items, |&i| {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    if (std::thread::current().id() == caller) == on_caller {
                        panic!("item {i} is bad");
                    }
                    i
                })
            });
            let payload = caught.expect_err("the panic propagates");
            let message = payload.downcast_ref::<String>().expect("a formatted panic");
            assert!(message.starts_with("item "), "{message}");
        }
    }
}
