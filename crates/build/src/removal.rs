//! Removing a server: its builds are cancelled, its records removed (the store cascades to
//! deployments, logs, sessions and everything else per server; the audit log keeps its rows),
//! and the artifacts only it used are deleted (environments follow at the next collection).
//! Its instances stop by themselves: the runtime
//! follows the store's change feed.

use skyport_store::{Server, ServerName};

use crate::{BuildError, Builder, artifact};

impl Builder {
    /// Removes the server named `name`; returns it, or `None` if there is no such server.
    pub async fn remove_server(&self, name: &ServerName) -> Result<Option<Server>, BuildError> {
        let store = &self.inner.store;
        let Some(server) = store.servers().get(name).await? else {
            return Ok(None);
        };
        for id in self.active() {
            let ours = store
                .deployments()
                .get(&id)
                .await?
                .is_some_and(|d| d.server_id == server.id);
            if ours {
                self.cancel(&id).await;
            }
        }
        // Held until the folders are gone: a build reusing one of these artifacts waits, then
        // finds it missing and builds it again.
        let _exclusive = self.inner.artifacts_in_use.write().await;
        let unused = store.deployments().artifacts_only_of(&server.id).await?;
        let Some(removed) = store.servers().remove(name).await? else {
            return Ok(None);
        };
        let dir = self.inner.dirs.artifacts.clone();
        let removing = tokio::task::spawn_blocking(move || {
            let hashes: Vec<&String> = unused.iter().filter(|h| artifact::is_hash(h)).collect();
            for hash in &hashes {
                artifact::remove(&dir.join(hash));
            }
            hashes.len()
        });
        match removing.await {
            Ok(count) => tracing::info!(server = %name, artifacts = count, "removed a server"),
            Err(e) => tracing::warn!(error = %e, "removing a server's artifacts crashed"),
        }
        Ok(Some(removed))
    }
}
