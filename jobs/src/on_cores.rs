//! Work spread over the machine's cores in scoped threads, the results in
//! order (the allocation tick prepares and decides 100,000 workloads so).

/// `items` cut into one run per core (fewer with fewer items), each with
/// the place of its first item, in order.
pub(crate) fn runs<T>(items: Vec<T>) -> Vec<(usize, Vec<T>)> {
    runs_of(
        items,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    )
}

/// `items` cut into at most `n` runs of equal size, the last shorter.
fn runs_of<T>(items: Vec<T>, n: usize) -> Vec<(usize, Vec<T>)> {
    let size = items.len().div_ceil(n.max(1)).max(1);
    let mut runs = Vec::with_capacity(n);
    let mut rest = items;
    // Split off from the end, so each item is moved once.
    while !rest.is_empty() {
        let start = (rest.len() - 1) / size * size;
        runs.push((start, rest.split_off(start)));
    }
    runs.reverse();
    runs
}

/// `work` on each of `inputs` in a thread of its own, the results in the
/// inputs' order; a panic in one is raised here.
pub(crate) fn each_in_a_thread<I: Send, R: Send>(
    inputs: Vec<I>,
    work: impl Fn(I) -> R + Sync,
) -> Vec<R> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|input| scope.spawn(move || work(input)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_item_once_in_order_with_their_places() {
        let runs = runs_of((0..5).collect::<Vec<_>>(), 2);
        assert_eq!(runs, [(0, vec![0, 1, 2]), (3, vec![3, 4])]);
        assert_eq!(runs_of((0..4).collect::<Vec<_>>(), 8).len(), 4);
        assert!(runs_of(Vec::<u8>::new(), 2).is_empty());
        for (start, run) in runs_of((0..1001).collect::<Vec<usize>>(), 3) {
            assert!(run.iter().enumerate().all(|(i, &v)| v == start + i));
        }
    }

    #[test]
    fn results_come_back_in_the_inputs_order() {
        let out = each_in_a_thread(runs_of((0..100u64).collect(), 4), |(start, run)| {
            (start, run.iter().sum::<u64>())
        });
        assert_eq!(out, [(0, 300), (25, 925), (50, 1550), (75, 2175)]);
    }
}
