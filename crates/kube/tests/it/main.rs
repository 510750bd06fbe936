//! Integration tests of the Kubernetes runtime against a fake API server (`fake.rs`), and of
//! the OCI image layout.

mod failures;
mod fake;
mod flow;
mod kubelet;
mod logs;
mod oci;
