//! Git sources: parsing the URL a user gave (keeping credentials out of everything that is shown
//! or stored), and fetching one commit of it into an artifact through a bare mirror per source.
//!
//! The mirror is fetched shallowly (`--depth 1` of the ref asked for), so a first deploy of a
//! large history costs one snapshot, and a redeploy sends only the objects the mirror lacks.
//! Every git process runs with prompts disabled and only the transports users need allowed
//! (`ext::` would run arbitrary commands).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use skyport_store::{Commit, FailureKind, Timestamp};
use tokio::process::Command;

use crate::BuildError;
use crate::environment::KeyLocks;
use crate::job::Failure;
use crate::process::{BuildLog, GroupGuard, RunError, command};
use crate::unpack::{self, Limits};

/// Transports git may use for a source.
const ALLOWED_PROTOCOLS: &str = "http:https:ssh:git:file";
/// Limit for one git command (a fetch of a large repository included).
const GIT_TIME_LIMIT: Duration = Duration::from_secs(600);
/// Lines of git's standard error quoted in a failure.
const ERROR_TAIL: usize = 8;

/// A git repository location; `Display` never shows a password or token it carries.
#[derive(Clone, PartialEq, Eq)]
pub struct GitUrl {
    /// The URL without credentials: what is shown, stored and hashed.
    shown: String,
    /// `user:password` taken out of an http(s) URL, handed to git through its credential
    /// protocol so that it never appears in a command line or a log.
    credentials: Option<(String, String)>,
}

impl GitUrl {
    /// Whether the URL carried a user and password (or token), which are never shown or stored.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The URL as git is asked to fetch it (credentials are supplied separately).
    fn fetch_url(&self) -> &str {
        &self.shown
    }
}

impl fmt::Display for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitUrl")
            .field("url", &self.shown)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl FromStr for GitUrl {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<GitUrl, BuildError> {
        let invalid = |why: &str| {
            Err(BuildError::InvalidGitUrl(format!(
                "'{}' is not a git URL Skyport can fetch: {why}; use https://, ssh://, git@host:path, file:// or an absolute path to a repository",
                redact_userinfo(s)
            )))
        };
        let text = s.trim();
        if text.is_empty() {
            return invalid("it is empty");
        }
        if text.starts_with('-') {
            return invalid("it starts with '-'");
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return invalid("it contains spaces or control characters");
        }
        if text.starts_with('/') {
            return Ok(GitUrl {
                shown: text.to_owned(),
                credentials: None,
            });
        }
        if let Some((scheme, rest)) = text.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if !["http", "https", "ssh", "git", "file"].contains(&scheme.as_str()) {
                return invalid(&format!("the '{scheme}' transport is not allowed"));
            }
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((userinfo, host)) => (Some(userinfo), host),
                None => (None, authority),
            };
            if scheme != "file" && host.is_empty() {
                return invalid("it has no host");
            }
            let credentials = match userinfo {
                Some(userinfo) if scheme == "http" || scheme == "https" => {
                    match userinfo.split_once(':') {
                        Some((user, password)) => Some((user.to_owned(), password.to_owned())),
                        // A lone token (`https://TOKEN@host/…`) is a password to hosts like GitHub.
                        None => Some(("x-access-token".to_owned(), userinfo.to_owned())),
                    }
                }
                _ => None,
            };
            let shown = match (userinfo, &credentials) {
                // An ssh user name is not a secret and is part of where to connect.
                (Some(user), None) => format!("{scheme}://{user}@{host}/{path}"),
                _ => format!("{scheme}://{host}/{path}"),
            };
            return Ok(GitUrl { shown, credentials });
        }
        // scp-like `user@host:path`: a colon before any slash.
        match text.split_once(':') {
            Some((host, path))
                if !host.contains('/')
                    && !host.is_empty()
                    && !path.is_empty()
                    && !path.starts_with(':') =>
            {
                Ok(GitUrl {
                    shown: text.to_owned(),
                    credentials: None,
                })
            }
            _ => invalid("it is neither a URL nor an absolute path"),
        }
    }
}

/// `scheme://user:secret@host` → `scheme://host`, for messages about text that did not parse.
fn redact_userinfo(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}/{path}"),
                None => text.to_owned(),
            }
        }
        None => text.to_owned(),
    }
}

/// A branch, tag or (full or abbreviated) commit, as git may be asked to fetch it: never an
/// option (`-…`) or a refspec that writes into the mirror (`a:b`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitRef(String);

impl GitRef {
    /// The ref as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for GitRef {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<GitRef, BuildError> {
        let invalid = |why: &str| {
            Err(BuildError::InvalidGitRef(format!(
                "'{s}' is not a git ref Skyport can fetch: {why}; pass a branch, a tag or a commit, e.g. --ref main"
            )))
        };
        if s.is_empty() {
            return invalid("it is empty");
        }
        if s.starts_with('-') {
            return invalid("it starts with '-'");
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return invalid("it contains spaces or control characters");
        }
        if s.contains(':') || s.contains("..") || s.contains('\\') {
            return invalid("git does not allow ':', '..' or '\\' in a ref");
        }
        Ok(GitRef(s.to_owned()))
    }
}

/// A git repository and the branch, tag or commit to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSource {
    /// Where the repository is.
    pub url: GitUrl,
    /// What to build; `None` is the remote's default branch.
    pub reference: Option<GitRef>,
    /// The exact commit to build, when `reference` names the branch it was pushed to: the
    /// deployment records the branch (so a newer push supersedes it in the queue) and builds
    /// this commit even if the branch has moved on since.
    pub commit: Option<GitRef>,
}

/// Folders and locks git fetching uses.
pub(crate) struct Mirrors<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) locks: &'a KeyLocks,
}

/// Fetches `source` into the mirror and writes the tree of the commit into `dest`; returns the
/// commit.
pub(crate) async fn checkout(
    source: &GitSource,
    mirrors: &Mirrors<'_>,
    dest: &Path,
    log: &BuildLog,
) -> Result<Commit, Failure> {
    let key = mirror_key(&source.url);
    let _guard = mirrors.locks.lock(&key).await;
    let mirror = mirrors.dir.join(format!("{key}.git"));
    let git = Git {
        mirror: &mirror,
        url: &source.url,
        log: Some(log),
    };
    if !mirror.join("HEAD").is_file() {
        tokio::fs::create_dir_all(&mirror).await.map_err(|e| {
            Failure::new(
                FailureKind::Internal,
                format!("cannot create the git mirror folder: {e}"),
            )
        })?;
        git.run(&["init", "--bare", "--quiet"], "prepare a mirror")
            .await?;
        log.info(&format!("new mirror of {}", source.url));
    } else {
        log.info(&format!("reusing the mirror of {}", source.url));
    }
    let wanted = match source.commit.as_ref().or(source.reference.as_ref()) {
        Some(reference) => reference.to_string(),
        None => git.default_branch().await?,
    };
    let sha = git.fetch(&wanted).await?;
    let commit = git.commit(&sha).await?;
    log.info(&format!(
        "commit {} by {}: {}",
        short(&commit.sha),
        commit.author,
        commit.message
    ));
    git.export(&sha, dest).await?;
    Ok(commit)
}

/// 16 hex digits naming the mirror of a URL.
fn mirror_key(url: &GitUrl) -> String {
    let digest = Sha256::digest(url.shown.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn looks_like_sha(text: &str) -> bool {
    (4..=40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit `branch` of `url` points at now (`git ls-remote`), or `None` when the remote
/// has no such branch. `workdir` is any existing folder for git to run in.
pub(crate) async fn remote_head(
    url: &GitUrl,
    branch: &GitRef,
    workdir: &Path,
) -> Result<Option<String>, Failure> {
    let git = Git {
        mirror: workdir,
        url,
        log: None,
    };
    let wanted = format!("refs/heads/{branch}");
    let out = git
        .run(
            &["ls-remote", "--heads", url.fetch_url(), &wanted],
            "list the remote's branches",
        )
        .await?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(_, name)| *name == wanted)
        .map(|(sha, _)| sha.to_owned()))
}

struct Git<'a> {
    /// The folder git runs in: the mirror, or any folder for commands that need none.
    mirror: &'a Path,
    url: &'a GitUrl,
    /// Where git's standard error goes, when a build is running.
    log: Option<&'a BuildLog>,
}

/// What one git command printed.
struct Output {
    ok: bool,
    stdout: String,
    stderr_tail: String,
}

impl Git<'_> {
    fn note(&self, text: &str) {
        if let Some(log) = self.log {
            log.info(text);
        }
    }

    fn command(&self) -> Command {
        let mut git = command(std::env::var_os("SKYPORT_GIT").unwrap_or_else(|| "git".into()));
        git.arg("-C")
            .arg(self.mirror)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
            .env("GIT_ASKPASS", "true")
            .env("SSH_ASKPASS", "true")
            // Fail instead of asking whether to trust a new ssh host key.
            .env(
                "GIT_SSH_COMMAND",
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            );
        if let Some((user, password)) = &self.url.credentials {
            // git's credential protocol reads them from the helper's output; the values stay
            // in this process's children's environment, never on a command line.
            git.arg("-c")
                .arg("credential.helper=")
                .arg("-c")
                .arg(
                    "credential.helper=!f() { echo \"username=$SKYPORT_GIT_USER\"; echo \"password=$SKYPORT_GIT_PASSWORD\"; }; f",
                )
                .env("SKYPORT_GIT_USER", user)
                .env("SKYPORT_GIT_PASSWORD", password);
        }
        git
    }

    /// Runs git with `args`, logging its output; a failure to start or finish is a source
    /// failure that says what was being done.
    async fn output(&self, args: &[&str], doing: &str) -> Result<Output, Failure> {
        let mut git = self.command();
        git.args(args);
        let finished = run_captured(git, self.log).await.map_err(|e| {
            Failure::new(
                FailureKind::Source,
                format!("git could not {doing}: {e}; check that git is installed"),
            )
        })?;
        Ok(finished)
    }

    async fn run(&self, args: &[&str], doing: &str) -> Result<String, Failure> {
        let out = self.output(args, doing).await?;
        if out.ok {
            Ok(out.stdout)
        } else {
            Err(Failure::new(
                FailureKind::Source,
                format!("git could not {doing}:\n{}", out.stderr_tail),
            ))
        }
    }

    async fn default_branch(&self) -> Result<String, Failure> {
        let out = self
            .output(
                &["ls-remote", "--symref", self.url.fetch_url(), "HEAD"],
                "list the remote's branches",
            )
            .await?;
        if !out.ok {
            return Err(Failure::new(
                FailureKind::Source,
                format!(
                    "cannot reach the repository {}:\n{}\ncheck the URL and that Skyport may read it",
                    self.url, out.stderr_tail
                ),
            ));
        }
        out.stdout
            .lines()
            .find_map(|line| {
                line.strip_prefix("ref: refs/heads/")
                    .and_then(|rest| rest.split('\t').next())
                    .map(str::to_owned)
            })
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::Source,
                    format!(
                        "the repository {} has no default branch (is it empty?); push a commit or pass --ref",
                        self.url
                    ),
                )
            })
    }

    /// Fetches `wanted` (branch, tag or SHA) shallowly; returns the commit's full SHA.
    async fn fetch(&self, wanted: &str) -> Result<String, Failure> {
        self.note(&format!("fetching {wanted}"));
        let url = self.url.fetch_url();
        let shallow = self
            .output(
                &[
                    "fetch",
                    "--quiet",
                    "--depth=1",
                    "--no-tags",
                    "--force",
                    url,
                    wanted,
                ],
                "fetch",
            )
            .await?;
        let rev = if shallow.ok {
            "FETCH_HEAD^{commit}".to_owned()
        } else if looks_like_sha(wanted) {
            // An abbreviated SHA (or a server that refuses to serve a commit by id) needs the
            // branches and tags, whose history holds it.
            self.note("not fetchable by id; fetching branches and tags to find the commit");
            let mut args = vec!["fetch", "--quiet", "--force", "--no-tags"];
            if self.mirror.join("shallow").is_file() {
                args.push("--unshallow");
            }
            args.extend([
                url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ]);
            self.run(&args, "fetch the repository's branches and tags")
                .await?;
            format!("{wanted}^{{commit}}")
        } else {
            return Err(Failure::new(
                FailureKind::Source,
                format!(
                    "ref '{wanted}' was not found in {}:\n{}\npass an existing branch, tag or commit with --ref",
                    self.url, shallow.stderr_tail
                ),
            ));
        };
        let out = self
            .output(
                &["rev-parse", "--verify", "--quiet", &rev],
                "resolve the ref",
            )
            .await?;
        let sha = out.stdout.trim().to_owned();
        if !out.ok || sha.is_empty() {
            return Err(Failure::new(
                FailureKind::Source,
                format!(
                    "ref '{wanted}' is not a commit of {}; pass an existing branch, tag or commit with --ref",
                    self.url
                ),
            ));
        }
        // A ref keeps the fetched objects from being pruned by git's housekeeping.
        self.run(
            &["update-ref", "refs/skyport/last", &sha],
            "record the fetched commit",
        )
        .await?;
        Ok(sha)
    }

    async fn commit(&self, sha: &str) -> Result<Commit, Failure> {
        let text = self
            .run(
                &["log", "-1", "--format=%H%x1f%an <%ae>%x1f%ct%x1f%s", sha],
                "read the commit",
            )
            .await?;
        let mut fields = text.trim_end().split('\x1f');
        let (Some(sha), Some(author), Some(time), Some(message)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Failure::new(
                FailureKind::Source,
                format!("git printed an unexpected commit description: {text}"),
            ));
        };
        let committed_at = time
            .parse::<i64>()
            .ok()
            .and_then(|seconds| Timestamp::from_second(seconds).ok())
            .unwrap_or_else(Timestamp::now);
        Ok(Commit {
            sha: sha.to_owned(),
            author: author.to_owned(),
            message: message.to_owned(),
            committed_at,
        })
    }

    /// Writes the commit's tree (no `.git`) into `dest` through `git archive`, unpacked with the
    /// same limits and path checks as an upload.
    async fn export(&self, sha: &str, dest: &Path) -> Result<(), Failure> {
        let parent = dest.parent().unwrap_or(dest);
        tokio::fs::create_dir_all(parent).await.map_err(|e| {
            Failure::new(
                FailureKind::Internal,
                format!("cannot create the artifact folder: {e}"),
            )
        })?;
        let archive = parent.join("source.tar.gz");
        let archive_arg = archive.to_string_lossy().into_owned();
        self.run(
            &["archive", "--format=tar.gz", "-o", &archive_arg, sha],
            "export the commit",
        )
        .await?;
        let (from, to) = (archive.clone(), dest.to_path_buf());
        let unpacked =
            tokio::task::spawn_blocking(move || unpack::unpack(&from, &to, Limits::default()))
                .await
                .map_err(|e| {
                    Failure::new(FailureKind::Internal, format!("unpacking crashed: {e}"))
                })?;
        let _ = tokio::fs::remove_file(&archive).await;
        let unpacked = unpacked.map_err(|e| Failure::new(FailureKind::Source, e.to_string()))?;
        for note in &unpacked.skipped {
            self.note(note);
        }
        self.note(&format!(
            "checked out {} files ({} KiB)",
            unpacked.files,
            unpacked.bytes.div_ceil(1024)
        ));
        Ok(())
    }
}

/// Runs a git command, logging its standard error (its progress and errors) and capturing its
/// standard output (what the caller parses).
async fn run_captured(mut git: Command, log: Option<&BuildLog>) -> Result<Output, RunError> {
    git.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = git.spawn().map_err(RunError::Spawn)?;
    let group = GroupGuard::new(&child);
    let run = child.wait_with_output();
    let output = match tokio::time::timeout(GIT_TIME_LIMIT, run).await {
        Ok(output) => output.map_err(RunError::Wait)?,
        Err(_) => return Err(RunError::Timeout),
    };
    group.disarm();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if let Some(log) = log {
        for line in &lines {
            log.line(skyport_store::LogStream::Stderr, (*line).to_owned());
        }
    }
    let tail = lines[lines.len().saturating_sub(ERROR_TAIL)..].join("\n");
    Ok(Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr_tail: tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_kept_out_of_the_shown_url() {
        let url: GitUrl = "https://bob:s3cret@git.example.com/acme/weather.git"
            .parse()
            .unwrap();
        assert_eq!(url.to_string(), "https://git.example.com/acme/weather.git");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            url.credentials,
            Some(("bob".to_owned(), "s3cret".to_owned()))
        );
        let token: GitUrl = "https://ghp_abc@github.com/acme/x".parse().unwrap();
        assert_eq!(token.to_string(), "https://github.com/acme/x");
    }

    #[test]
    fn accepted_forms() {
        for ok in [
            "https://github.com/acme/weather.git",
            "ssh://git@github.com/acme/weather.git",
            "git@github.com:acme/weather.git",
            "file:///srv/repos/weather.git",
            "/srv/repos/weather.git",
        ] {
            let url: GitUrl = ok.parse().unwrap();
            assert_eq!(url.to_string(), ok);
        }
    }

    #[test]
    fn refused_forms_say_why_without_leaking_secrets() {
        for (bad, why) in [
            ("ext::sh -c touch% /tmp/pwned", "spaces"),
            ("ext::sh", "neither a URL"),
            ("-uhelp", "starts with '-'"),
            ("ftp://example.com/x.git", "'ftp' transport"),
            ("relative/path", "neither a URL"),
            ("", "empty"),
            ("https://u:topsecret@/x", "no host"),
        ] {
            let err = bad.parse::<GitUrl>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("topsecret"), "{err}");
        }
    }

    #[test]
    fn refs_that_git_would_read_as_options_or_refspecs_are_refused() {
        for ok in ["main", "v1.2.0", "feature/x", "a1b2c3d", "refs/tags/v1"] {
            assert_eq!(ok.parse::<GitRef>().unwrap().as_str(), ok);
        }
        for (bad, why) in [
            ("--upload-pack=touch /tmp/x", "starts with '-'"),
            ("main:refs/heads/evil", "':'"),
            ("a..b", "'..'"),
            ("two words", "spaces"),
            ("", "empty"),
        ] {
            let err = bad.parse::<GitRef>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn sha_detection() {
        assert!(looks_like_sha("a1b2c3d"));
        assert!(!looks_like_sha("main"));
        assert!(!looks_like_sha("abc"));
    }
}
