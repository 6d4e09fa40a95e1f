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
}

/// A new random identifier (UUID v7: unique, and index-friendly because time-ordered).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
