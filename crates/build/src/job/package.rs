//! The build of a packaged server (`pypi:…`, `npm:…`): resolve the installer, install the
//! package into the work folder, reuse an artifact with the same content or inspect the server
//! over stdio and finish a new one. The phases are the same as a source build's, so progress,
//! logs and failure classes read alike.

use std::path::Path;

use skyport_store::{BuildPhase, Built, FailureKind, LaunchSpec, Transport};
use tokio::sync::RwLockReadGuard;

use super::{Failure, Job};
use crate::artifact::{self, Manifest};
use crate::environment::Settings;
use crate::inspect;
use crate::package::{self, InstallContext, Installed, PackageManifest, PackageSource, Registry};
use crate::toolchain;

impl<'a> Job<'a> {
    /// Builds `package` in `work`; returns what to record and, when an existing artifact is
    /// reused, the guard that keeps garbage collection off it until it is recorded.
    pub(super) async fn build_package(
        &self,
        package: &PackageSource,
        work: &Path,
    ) -> Result<(Built, Option<RwLockReadGuard<'a, ()>>), Failure> {
        let internal = |what: &str, e: std::io::Error| {
            Failure::new(FailureKind::Internal, format!("{what}: {e}"))
        };
        self.log.info(&format!(
            "package {package}{}",
            if package.version.is_none() {
                " (newest version)"
            } else {
                ""
            }
        ));
        tokio::fs::create_dir_all(work)
            .await
            .map_err(|e| internal("cannot create the build folder", e))?;

        self.enter(BuildPhase::Resolve).await?;
        let dirs = &self.inner.dirs;
        let ctx = InstallContext {
            work,
            log: self.log,
            variables: self.env,
            npm_cache: &dirs.npm_cache,
        };
        let installed = match package.registry {
            Registry::Pypi => {
                let toolchain = self
                    .inner
                    .shared
                    .toolchain()
                    .get_or_try_init(|| toolchain::discover(&dirs.tools, self.log))
                    .await?;
                self.log.info(&format!(
                    "using Python {} at {} and {}",
                    toolchain.python_version,
                    toolchain.python.display(),
                    toolchain.uv_version
                ));
                self.enter(BuildPhase::Install).await?;
                let settings = Settings {
                    envs: &dirs.envs,
                    uv_cache: &dirs.uv_cache,
                    locks: self.inner.shared.env_locks(),
                    variables: self.env,
                };
                package::install_pypi(package, &ctx, toolchain, &settings).await?
            }
            Registry::Npm => {
                self.enter(BuildPhase::Install).await?;
                package::install_npm(package, &ctx).await?
            }
        };

        let hash = installed.hash();
        let dest = dirs.artifacts.join(&hash);
        let reuse_guard = self.inner.artifacts_in_use.read().await;
        let (manifest, inspection, reuse_guard) = match artifact::load(&dest) {
            Some((manifest, inspection)) => {
                self.log.info(&format!(
                    "artifact {hash} already holds {}: reusing it",
                    installed.resolved
                ));
                let unused = work.to_path_buf();
                let _ = tokio::task::spawn_blocking(move || artifact::remove(&unused)).await;
                (manifest, inspection, Some(reuse_guard))
            }
            None => {
                drop(reuse_guard);
                let (manifest, inspection) = self
                    .finish_package(package, &installed, work, &dest, &hash)
                    .await?;
                (manifest, inspection, None)
            }
        };
        let (program, args) = installed.command_in(work, &dest);
        let built = Built {
            entrypoint: manifest.entrypoint.clone(),
            artifact: hash,
            launch: LaunchSpec {
                program,
                args,
                working_dir: dest,
                transport: installed.resolved.transport(),
            },
            manifest: serde_json::to_value(&manifest).unwrap_or_default(),
            inspection,
        };
        Ok((built, reuse_guard))
    }

    /// Inspects the installed server and moves the work folder to `dest`, finished.
    async fn finish_package(
        &self,
        requested: &PackageSource,
        installed: &Installed,
        work: &Path,
        dest: &Path,
        hash: &str,
    ) -> Result<(Manifest, serde_json::Value), Failure> {
        self.enter(BuildPhase::Inspect).await?;
        let inspection = if installed.resolved.transport() == Transport::Stdio {
            let (program, args) = installed.command_in(work, work);
            let inspection = package::inspect(&program, &args, work, self.env, self.log).await?;
            self.log.info(&inspect::summary(&inspection));
            inspection
        } else {
            // Asking it over HTTP would need a port and a client this crate does not have; it
            // is checked when an instance starts (which must answer HTTP at `/mcp`).
            self.log.info(
                "the package serves HTTP itself: it is checked when its first instance starts, not inspected",
            );
            serde_json::json!({"kind": "http", "server": {"name": installed.resolved.name, "version": installed.resolved.version}, "tools": [], "resources": [], "resource_templates": [], "prompts": []})
        };
        let manifest = Manifest {
            hash: hash.to_owned(),
            source: requested.to_string(),
            commit: None,
            entrypoint: format!(
                "{} ({})",
                installed.resolved,
                installed.resolved.command.as_deref().unwrap_or_default()
            ),
            python: installed.python.clone(),
            environment: String::new(),
            packages: installed.packages.clone(),
            metadata: None,
            package: Some(PackageManifest {
                source: installed.resolved.clone(),
                runtime: installed.runtime.clone(),
            }),
        };
        let (from, to, m, i) = (
            work.to_path_buf(),
            dest.to_path_buf(),
            manifest.clone(),
            inspection.clone(),
        );
        tokio::task::spawn_blocking(move || artifact::finish(&from, &to, &m, &i))
            .await
            .map_err(|e| {
                Failure::new(FailureKind::Internal, format!("finishing crashed: {e}"))
            })??;
        self.log.info(&format!("artifact {hash} stored"));
        Ok((manifest, inspection))
    }
}
