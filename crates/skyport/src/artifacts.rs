//! The runtime's artifact hook wired to the build crate: before an instance starts, its launch
//! spec is made runnable on this replica (an artifact another replica built is fetched from
//! the database, its environment recreated, its paths moved into this data dir). The runtime
//! never sees the build crate; this is where they meet.

use std::future::Future;
use std::pin::Pin;

use skyport_build::{SharedArtifacts, Starting};
use skyport_runtime::{Artifacts, Target};
use skyport_store::LaunchSpec;

/// Readies launch specs with the build crate's shared artifacts.
pub(crate) struct BuiltArtifacts(pub(crate) SharedArtifacts);

impl Artifacts for BuiltArtifacts {
    fn prepare<'a>(
        &'a self,
        target: &'a Target,
    ) -> Pin<Box<dyn Future<Output = Result<LaunchSpec, String>> + Send + 'a>> {
        Box::pin(async move {
            let starting = Starting {
                server: &target.server_id,
                deployment: &target.deployment,
                env: &target.env,
            };
            self.0.prepare(&target.launch, starting).await
        })
    }
}
