//! The build job of one deployment: the phases in order, each logged, ending in exactly one
//! recorded outcome (ready and promoted, or failed with a classified message). A failure or a
//! panic anywhere still ends in `fail`, and a failed build leaves no artifact behind.

use std::path::Path;
use std::sync::Arc;

use skyport_store::{
    BuildFailure, BuildPhase, Built, Deployment, DeploymentId, FailureKind, LaunchSpec, StoreError,
};
use tracing::Instrument;

use crate::entrypoint::{self, Located};
use crate::environment::{self, Settings};
use crate::inspect::{self, LAUNCHER_FILE};
use crate::process::BuildLog;
use crate::unpack::{self, Limits, UnpackError};
use crate::{BuildRequest, Inner, Source, toolchain};

/// A classified build failure: what the user sees on the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, message: String) -> Failure {
        Failure { kind, message }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::new(
            FailureKind::Internal,
            format!("the database failed during the build: {e}; deploy again"),
        )
    }
}

/// Runs the build of `deployment` to its recorded end.
pub(crate) async fn run(inner: Arc<Inner>, deployment: Deployment, request: BuildRequest) {
    let id = deployment.id.clone();
    let span = tracing::info_span!("build", deployment = %id, server = %deployment.server_id);
    async move {
        let log = BuildLog::new(
            inner.store.logs().writer(),
            deployment.server_id.clone(),
            id.clone(),
        );
        // The phases run in their own task so that a panic in them is caught here and still
        // recorded as a failure, instead of leaving the deployment "building" forever.
        let outcome = tokio::spawn(build(inner.clone(), log.clone(), id.clone(), request)).await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(failure)) => failure,
            Err(e) => Failure::new(
                FailureKind::Internal,
                format!("the build crashed ({e}); this is a bug in Skyport, please report it"),
            ),
        };
        tracing::info!(kind = failure.kind.as_str(), "build failed");
        log.info(&failure.message);
        log.flush().await;
        let recorded = inner
            .store
            .deployments()
            .fail(
                &id,
                &BuildFailure {
                    kind: failure.kind,
                    message: failure.message,
                },
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record the build failure");
        }
        let artifact = inner.dirs.artifacts.join(id.as_str());
        if let Err(e) = tokio::fs::remove_dir_all(&artifact).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %artifact.display(), "cannot remove a failed artifact");
        }
    }
    .instrument(span)
    .await;
}

async fn build(
    inner: Arc<Inner>,
    log: BuildLog,
    id: DeploymentId,
    request: BuildRequest,
) -> Result<(), Failure> {
    let deployments = inner.store.deployments();
    let artifact = inner.dirs.artifacts.join(id.as_str());
    let src = artifact.join("src");

    deployments.enter_phase(&id, BuildPhase::Source).await?;
    match &request.source {
        Source::Upload(upload) => {
            unpack_upload(&upload.path(&inner.dirs.uploads), &src, &log).await?;
        }
    }

    deployments.enter_phase(&id, BuildPhase::Entrypoint).await?;
    let located = locate(&src, &request, &log).await?;

    deployments
        .enter_phase(&id, BuildPhase::Environment)
        .await?;
    let toolchain = inner
        .toolchain
        .get_or_try_init(|| toolchain::discover(&inner.dirs.tools, &log))
        .await?;
    log.info(&format!(
        "using Python {} at {} and {} at {}",
        toolchain.python_version,
        toolchain.python.display(),
        toolchain.uv_version,
        toolchain.uv.display()
    ));
    let settings = Settings {
        envs: &inner.dirs.envs,
        uv_cache: &inner.dirs.uv_cache,
        locks: &inner.env_locks,
    };
    let env = environment::ensure(toolchain, &src, &settings, &log).await?;

    deployments.enter_phase(&id, BuildPhase::Inspect).await?;
    let inspected = inspect::inspect(
        &env,
        &artifact,
        &src,
        &located.file,
        located.object.as_deref(),
        &log,
    )
    .await?;
    log.info(&inspect::summary(&inspected.inspection));

    let built = Built {
        entrypoint: format!("{}:{}", located.file, inspected.object),
        launch: LaunchSpec {
            program: env.join("bin").join("python"),
            args: vec![
                artifact.join(LAUNCHER_FILE).to_string_lossy().into_owned(),
                "serve".to_owned(),
                located.path.to_string_lossy().into_owned(),
                inspected.object.clone(),
            ],
            working_dir: src.clone(),
        },
        inspection: inspected.inspection,
    };
    // The phase goes first: entering a phase marks the deployment "building" again, and only a
    // ready deployment can be promoted.
    deployments.enter_phase(&id, BuildPhase::Promote).await?;
    log.info(&format!("built {}; promoting", built.entrypoint));
    log.flush().await;
    deployments.succeed(&id, &built).await?;
    match deployments.promote(&id).await? {
        Some(previous) => log.info(&format!(
            "promoted; previous live deployment {previous} will be retired"
        )),
        None => log.info("promoted; this is the server's first live deployment"),
    }
    log.flush().await;
    tracing::info!("build succeeded and was promoted");
    Ok(())
}

/// Unpacks the upload into `src` and removes it: an upload serves one build.
async fn unpack_upload(upload: &Path, src: &Path, log: &BuildLog) -> Result<(), Failure> {
    log.info("unpacking the uploaded source");
    let (archive, dest) = (upload.to_path_buf(), src.to_path_buf());
    let unpacked =
        tokio::task::spawn_blocking(move || unpack::unpack(&archive, &dest, Limits::default()))
            .await
            .map_err(|e| Failure::new(FailureKind::Internal, format!("unpacking crashed: {e}")))?;
    let unpacked = match unpacked {
        Ok(unpacked) => unpacked,
        Err(UnpackError::Corrupt(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::new(
                FailureKind::Source,
                "the upload is gone (each upload is used by one build); upload the source again"
                    .to_owned(),
            ));
        }
        Err(e) => return Err(Failure::new(FailureKind::Source, e.to_string())),
    };
    if let Err(e) = tokio::fs::remove_file(upload).await {
        tracing::warn!(error = %e, "cannot remove a used upload");
    }
    for note in &unpacked.skipped {
        log.info(note);
    }
    log.info(&format!(
        "unpacked {} files ({} KiB)",
        unpacked.files,
        unpacked.bytes.div_ceil(1024)
    ));
    Ok(())
}

async fn locate(src: &Path, request: &BuildRequest, log: &BuildLog) -> Result<Located, Failure> {
    let (src, requested) = (src.to_path_buf(), request.entrypoint.clone());
    let located = tokio::task::spawn_blocking(move || entrypoint::locate(&src, requested.as_ref()))
        .await
        .map_err(|e| Failure::new(FailureKind::Internal, format!("locating crashed: {e}")))?
        .map_err(|message| Failure::new(FailureKind::Entrypoint, message))?;
    match (&request.entrypoint, &located.object) {
        (Some(_), Some(object)) => log.info(&format!("entrypoint {}:{object}", located.file)),
        (Some(_), None) => log.info(&format!(
            "entrypoint {} (object found by inspection)",
            located.file
        )),
        (None, _) => log.info(&format!(
            "entrypoint {} (default; the server object is found by inspection)",
            located.file
        )),
    }
    Ok(located)
}
