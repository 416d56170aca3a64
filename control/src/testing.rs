//! Test support (feature `testing`): a throwaway PostgreSQL server from Debian's binaries and
//! a runner that gives a test body a fresh database of each backend.
//!
//! The server is real: `initdb` into a temporary folder and `pg_ctl start` on a free loopback
//! port, as the unprivileged `postgres` user when the tests run as root (PostgreSQL refuses
//! root). One server serves a whole test process, one new database per test. A guardian shell
//! started with it stops it (and removes its folder) once the test process has exited, however
//! it exits, so no `postgres` process outlives the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::ControlDb;

/// A PostgreSQL server of the tests.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    stopped_on_drop: bool,
}

/// Where Debian keeps the server binaries (newest version first), or `initdb` on the PATH.
fn postgres_bin() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("ELEVATION_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").exists());
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().ok_or_else(|| {
        "PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin/initdb); \
         `apt-get install postgresql` (.ci/run does)"
            .to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TestPostgres {
    /// Starts a new server in its own temporary folder.
    pub fn start() -> Result<TestPostgres, String> {
        let bin = postgres_bin()?;
        let run_as = is_root().then_some("postgres");
        let root = tempfile::Builder::new()
            .prefix("elevation-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        if let Some(user) = run_as {
            run(Command::new("chown").arg(format!("{user}:")).arg(&root))?;
        }
        let server = TestPostgres {
            bin,
            root,
            port: free_port(),
            run_as,
            stopped_on_drop: true,
        };
        server.pg(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        server.guard()?;
        server.resume()?;
        Ok(server)
    }

    fn data(&self) -> String {
        self.root.join("data").display().to_string()
    }

    /// Runs a server binary, as the unprivileged user when we are root.
    fn pg(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(&self.root);
        run(&mut command)
    }

    /// Stops the server and removes its folder after this process exits: a shell polling our
    /// process id, started detached so it outlives us.
    fn guard(&self) -> Result<(), String> {
        let pg_ctl = self.bin.join("pg_ctl");
        let as_user = self.run_as.map(|u| format!("runuser -u {u} -- ")).unwrap_or_default();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; {as_user}'{pg_ctl}' -D '{data}' stop -m immediate \
             >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = self.data(),
            root = self.root.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|_| ())
            .map_err(|e| format!("cannot start the guardian of the test PostgreSQL: {e}"))
    }

    /// Starts the (stopped) server again on its port.
    pub fn resume(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.root.display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &self.root.join("log").display().to_string(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        )
    }

    /// Stops the server at once (connections are cut, as when a database host dies).
    pub fn stop(&self) -> Result<(), String> {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"])
    }

    /// The URL of a database on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        execute(
            &ControlDb::Postgres(self.url("postgres")),
            &format!("CREATE DATABASE {name}"),
        )
        .await;
        self.url(&name)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.stopped_on_drop {
            let _ = self.stop();
        }
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The server the tests of this process share (started on first use, stopped by its guardian
/// when the process exits).
pub fn shared_postgres() -> &'static TestPostgres {
    static SERVER: OnceLock<Result<TestPostgres, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        TestPostgres::start().map(|mut s| {
            // A static is never dropped; the guardian stops it.
            s.stopped_on_drop = false;
            s
        })
    });
    server
        .as_ref()
        .unwrap_or_else(|e| panic!("cannot start the test PostgreSQL: {e}"))
}

/// A fresh control-plane database of one backend, for one test.
#[derive(Debug)]
pub struct TestDb {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Where it is.
    pub db: ControlDb,
    /// A data folder for the test (the SQLite file lives in it).
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// A SQLite file in a new temporary folder.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary folder");
        TestDb {
            backend: "sqlite",
            db: ControlDb::default_in(dir.path()),
            dir,
        }
    }

    /// A new database on the shared PostgreSQL server.
    pub async fn postgres() -> TestDb {
        let url = shared_postgres().fresh_database().await;
        TestDb {
            backend: "postgres",
            db: ControlDb::Postgres(url),
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// The data folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `body` twice: on a fresh SQLite database, then on a fresh PostgreSQL database. A
/// failure names the backend in the panic message of the body's assertion (print it there)
/// and in the line printed before each run.
pub async fn each_backend<F, Fut>(body: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for db in [TestDb::sqlite(), TestDb::postgres().await] {
        eprintln!("--- control-plane backend: {}", db.backend);
        body(db).await;
    }
}

/// Runs SQL straight on a database (several statements allowed): how tests tamper with what
/// elevation wrote.
pub async fn execute(db: &ControlDb, sql: &str) {
    use sqlx::Connection;
    match db {
        ControlDb::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("connects");
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        ControlDb::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connects");
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}
