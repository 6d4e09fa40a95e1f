/// The organisation a request acts for. Every tenant-scoped query takes one, so a
/// query cannot forget the scope; the server's auth extractor is what makes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    pub fn new(organization_id: impl Into<String>) -> Self {
        Self(organization_id.into())
    }

    pub fn id(&self) -> &str {
        &self.0
    }

    /// The organisation id, without copying it.
    pub fn into_id(self) -> String {
        self.0
    }
}

/// A new random identifier (UUID v7: unique, and index-friendly because time-ordered).
pub fn new_id() -> String {
    // Each thread orders its own ids: the crate's shared context is a mutex
    // that the allocation tick's threads, making two ids per decision,
    // queued on. Ids of one millisecond from different threads are still
    // unique (random bits), only not in the order they were made.
    thread_local! {
        static CONTEXT: uuid::ContextV7 = const { uuid::ContextV7::new() };
    }
    let context = uuid::timestamp::context::ThreadLocalContext::new(&CONTEXT);
    let id = uuid::Uuid::new_v7(uuid::Timestamp::now(context));
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::new_id;

    #[test]
    fn ids_are_v7_uuids_ordered_within_a_thread_and_unique_across_threads() {
        let made: Vec<Vec<String>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| (0..10_000).map(|_| new_id()).collect::<Vec<_>>()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for ids in &made {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "a thread's ids ascend");
            let id = uuid::Uuid::parse_str(&ids[0]).unwrap();
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(
                ids[0],
                id.hyphenated().to_string(),
                "lower-case, hyphenated"
            );
        }
        let all: std::collections::HashSet<&String> = made.iter().flatten().collect();
        assert_eq!(all.len(), 20_000);
    }
}
