//! A real OCI registry (`docker-registry`, installed by `cargo xtask
//! setup`) on a free loopback port, optionally behind htpasswd.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, run_ok, tempdir, tool};

/// A `docker-registry` on a free loopback port, killed on drop.
pub struct LocalRegistry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    pub fn start(htpasswd: Option<(&str, &str)>) -> LocalRegistry {
        let dir = tempdir();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = htpasswd {
            let file = dir.path().join("htpasswd");
            run_ok(
                tool("htpasswd")
                    .args(["-Bbc"])
                    .arg(&file)
                    .arg(user)
                    .arg(password),
            );
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = tool("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        LocalRegistry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
