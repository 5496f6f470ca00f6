//! A local S3-compatible server for tests: moto's server (PyPI `moto`), started on a free
//! loopback port and stopped when dropped.
//!
//! `scripts/ensure-s3-server.sh` installs it into `target/tools/moto` (test.sh and CI run
//! the script); `GATEWAY_TEST_S3_SERVER` may name another `moto_server` executable. Without
//! one, [`LocalS3::start`] returns `None` and tests that need it report a skip — unless
//! `GATEWAY_TEST_REQUIRE_S3=1` (set by test.sh), where a missing server fails the test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials the tests use (moto accepts any).
pub const ACCESS_KEY_ID: &str = "testing-key";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "testing-secret";

/// A running local S3 server.
#[derive(Debug)]
pub struct LocalS3 {
    child: Child,
    endpoint: String,
}

/// Where `scripts/ensure-s3-server.sh` puts `moto_server`, or `GATEWAY_TEST_S3_SERVER`.
pub fn server_path() -> PathBuf {
    match std::env::var_os("GATEWAY_TEST_S3_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/moto/bin/moto_server"),
    }
}

impl LocalS3 {
    /// Starts the server and waits until it answers; `None` when it is not installed (and
    /// not required).
    pub async fn start() -> Option<Self> {
        let path = server_path();
        if !path.exists() {
            assert!(
                std::env::var("GATEWAY_TEST_REQUIRE_S3").as_deref() != Ok("1"),
                "the local S3 server is required but {} does not exist: run scripts/ensure-s3-server.sh",
                path.display()
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let server = LocalS3 { child, endpoint: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http.get(&server.endpoint).send().await.is_ok() {
                return Some(server);
            }
            assert!(Instant::now() < deadline, "the local S3 server did not answer on {}", server.endpoint);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("the local S3 server answers");
        assert!(response.status().is_success(), "creating bucket {name}: {}", response.status());
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
