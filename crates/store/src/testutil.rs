//! Helpers shared by the unit tests: a store in a fresh temporary directory
//! (a real file, never `sqlite::memory:`, where each pooled connection would see
//! its own empty database).

use crate::Store;

/// Opens a store on a new file; keep the directory alive as long as the store.
pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("carteiro.db"))
        .await
        .expect("open store");
    (dir, store)
}
