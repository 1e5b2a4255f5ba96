//! Load benchmark: starts the real `glue` binary (release build) on 127.0.0.1 with a fresh
//! database, drives it with bounded concurrency for a bounded time per phase, and prints a
//! table of figures measured in this one run, each next to the raw limit it should approach.
//!
//! ```sh
//! cargo bench --bench loadgen                          # SQLite
//! cargo bench --bench loadgen -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench loadgen --features mysql -- --mysql mysql://root@127.0.0.1:3306/mysql
//! cargo bench --bench loadgen -- --seconds 10 --concurrency 16
//! ```
//!
//! It only talks to 127.0.0.1 and stops by itself (every phase has a time limit).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

struct Args {
    seconds: u64,
    concurrency: usize,
    /// Clients logging in at once during the login storm (enough to fill every lane).
    login_concurrency: usize,
    customers: usize,
    bcrypt_cost: u32,
    postgres: Option<String>,
    mysql: Option<String>,
    /// Extra `KEY=VALUE` environment for the service (e.g. GLUE__OAUTH__BCRYPT_NICE=19).
    env: Vec<(String, String)>,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 6,
        concurrency: 8,
        login_concurrency: 30,
        customers: 10_000,
        bcrypt_cost: 12,
        postgres: None,
        mysql: None,
        env: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--login-concurrency" => {
                args.login_concurrency = value().parse().expect("--login-concurrency N")
            }
            "--customers" => args.customers = value().parse().expect("--customers N"),
            "--bcrypt-cost" => args.bcrypt_cost = value().parse().expect("--bcrypt-cost N"),
            "--postgres" => args.postgres = Some(value()),
            "--mysql" => args.mysql = Some(value()),
            "--env" => {
                let pair = value();
                let (k, v) = pair.split_once('=').expect("--env KEY=VALUE");
                args.env.push((k.to_string(), v.to_string()));
            }
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    args
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `work` on every core for `seconds`; returns operations per second in total.
fn raw_rate(seconds: f64, work: impl Fn() + Sync) -> f64 {
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores() {
            scope.spawn(|| {
                while started.elapsed().as_secs_f64() < seconds {
                    work();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn peak_rss_mib(&self) -> f64 {
        let mut status = String::new();
        if let Ok(mut f) = std::fs::File::open(format!("/proc/{}/status", self.child.id())) {
            let _ = f.read_to_string(&mut status);
        }
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(
    database_url: &str,
    private_key: &str,
    cost: u32,
    env: &[(String, String)],
) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_glue"))
        .arg("serve")
        .env("GLUE_ENV", "test")
        .env("DATABASE_URL", database_url)
        .env("GLUE__SERVER__HOST", "127.0.0.1")
        .env("GLUE__SERVER__PORT", port.to_string())
        .env("GLUE__SERVER__WORKERS", "0")
        .env("GLUE__DATABASE__POOL_SIZE", "10")
        .env("GLUE__OAUTH__BCRYPT_COST", cost.to_string())
        .env("GLUE__OAUTH__PRIVATE_KEY_PEM", private_key)
        .env("GLUE__SECURITY_BLOCKER__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start glue");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not become ready");
}

const JSON_API: &str = "application/vnd.api+json";

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client
        .post(url)
        .header("Content-Type", JSON_API)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn login_body() -> Value {
    json!({"data":{"type":"agent-access-tokens","attributes":{"username":"admin@spryker.com","password":"change123"}}})
}

async fn login(client: &reqwest::Client, base: &str) -> (String, String) {
    let (status, body) = post(
        client,
        &format!("{base}/agent-access-tokens"),
        &login_body(),
    )
    .await;
    assert_eq!(status, 201, "login: {body}");
    let a = &body["data"]["attributes"];
    (
        a["accessToken"].as_str().unwrap().to_string(),
        a["refreshToken"].as_str().unwrap().to_string(),
    )
}

/// Sequential cheap requests (healthz, JWKS, a 404) for `duration`; latencies in ms, sorted.
async fn cheap_latencies(
    client: &reqwest::Client,
    base: &str,
    duration: Duration,
    pause: Duration,
) -> Vec<f64> {
    let urls = [
        format!("{base}/healthz"),
        format!("{base}/.well-known/jwks.json"),
        format!("{base}/no-such-resource"),
    ];
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < duration {
        let t = Instant::now();
        let response = client
            .get(&urls[i % 3])
            .send()
            .await
            .expect("cheap request");
        let _ = response.bytes().await;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        i += 1;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// `concurrency` loops running `one` until `duration` passes; returns successes per second.
async fn saturate<F, Fut>(concurrency: usize, duration: Duration, one: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let one = Arc::new(one);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (ok, failed, stop, one) = (ok.clone(), failed.clone(), stop.clone(), one.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if one(worker).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let failures = failed.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "requests failed under load");
    ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn seed_customers(database_url: &str, count: usize) {
    let mut conn = glue::db::ConnectionManager::new(database_url, 5000)
        .unwrap()
        .establish()
        .expect("connect for seeding");
    glue::db::run_migrations(&mut conn).expect("migrate");
    // PostgreSQL ids come from Propel's sequence, as Spryker writes them.
    let (id_column, id_value) = match conn.backend() {
        glue::db::Backend::Postgresql => ("id_customer, ", "nextval('spy_customer_pk_seq'), "),
        _ => ("", ""),
    };
    let mut sql = String::from("BEGIN;");
    for chunk in (1..=count).collect::<Vec<_>>().chunks(1000) {
        sql.push_str(&format!(
            "INSERT INTO spy_customer ({id_column}customer_reference, email, first_name, last_name) VALUES "
        ));
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({id_value}'L-{i}','user{i}@example.com','First{f}','Last{l}')",
                    f = i % 997,
                    l = i % 1009
                )
            })
            .collect();
        sql.push_str(&rows.join(","));
        sql.push(';');
    }
    sql.push_str("COMMIT;");
    conn.batch_execute(&sql).expect("seed customers");
}

#[cfg(feature = "mysql")]
struct MysqlDatabase {
    admin: String,
    name: String,
}

#[cfg(feature = "mysql")]
impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        use diesel::Connection;
        if let Ok(mut c) = diesel::MysqlConnection::establish(&self.admin) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

struct PgDatabase {
    admin: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        use diesel::Connection;
        if let Ok(mut c) = diesel::PgConnection::establish(&self.admin) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn main() {
    let args = parse_args();
    let phase = Duration::from_secs(args.seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The database: a fresh SQLite file, or a fresh PostgreSQL database on the given server.
    let dir = std::env::temp_dir().join(format!("glue-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut pg_guard = None;
    #[cfg(feature = "mysql")]
    let mut mysql_guard = None;
    let (backend, database_url) = match (&args.postgres, &args.mysql) {
        (None, None) => ("SQLite", dir.join("bench.sqlite3").display().to_string()),
        #[cfg(feature = "mysql")]
        (None, Some(admin)) => {
            use diesel::Connection;
            let name = format!("glue_bench_{}", std::process::id());
            let mut c = diesel::MysqlConnection::establish(admin).expect("MariaDB server");
            c.batch_execute(&format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8 COLLATE utf8_unicode_ci"
            ))
            .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            mysql_guard = Some(MysqlDatabase {
                admin: admin.clone(),
                name: name.clone(),
            });
            ("MariaDB", format!("{base}/{name}"))
        }
        #[cfg(not(feature = "mysql"))]
        (None, Some(_)) => panic!("--mysql needs `cargo bench --features mysql`"),
        (Some(admin), _) => {
            use diesel::Connection;
            let name = format!("glue_bench_{}", std::process::id());
            let mut c = diesel::PgConnection::establish(admin).expect("PostgreSQL server");
            c.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            pg_guard = Some(PgDatabase {
                admin: admin.clone(),
                name,
            });
            ("PostgreSQL", url)
        }
    };
    seed_customers(&database_url, args.customers);

    // Raw limits, measured on all cores before the service starts.
    let (private_pem, _) = glue::oauth::keys::generate_pem().unwrap();
    let hash = glue::password::hash("change123", args.bcrypt_cost).unwrap();
    // Three references for logins/s, on every core: the bcrypt crate (glue's original kernel),
    // bcrypt-rust's scalar kernel, and its batch kernel's raw rate with every lane full.
    let bcrypt_per_s = raw_rate(args.seconds as f64, || {
        assert!(bcrypt::verify("change123", &hash).unwrap());
    });
    let scalar_per_s = raw_rate(args.seconds as f64, || {
        assert!(bcrypt_rust::verify("change123", &hash).unwrap());
    });
    let lanes = bcrypt_rust::detected_backend().lanes();
    let batch_passwords: Vec<&[u8]> = vec![b"change123"; lanes];
    let batch_hashes: Vec<&str> = vec![hash.as_str(); lanes];
    let batch_per_s = lanes as f64
        * raw_rate(args.seconds as f64, || {
            assert!(bcrypt_rust::verify_many(&batch_passwords, &batch_hashes)
                .into_iter()
                .all(|r| r.unwrap()));
        });
    let keys = glue::oauth::keys::KeySet::from_pems(private_pem.as_bytes(), &[]).unwrap();
    let sub = glue::oauth::jwt::UserIdentifier::agent(1).to_json();
    let scopes = vec!["agent".to_string()];
    let request = glue::oauth::jwt::AccessTokenRequest {
        audience: "frontend",
        issuer: "http://glue.test",
        ttl_s: 28800,
        subject: &sub,
        scopes: &scopes,
        actor: None,
        session: Some("0123456789abcdef0123456789abcdef"),
        backdate_s: 1,
    };
    // The limit: RSA signatures with an already parsed key, over a token-sized message.
    let message = glue::oauth::jwt::mint(&keys, &request, 1_800_000_000).unwrap();
    let message = message.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let sign_per_s = raw_rate(3.0, || {
        keys.signing.sign(&message).unwrap();
    });

    let server = start_server(&database_url, &private_pem, args.bcrypt_cost, &args.env);
    let base = server.base.clone();
    let pid = server.pid();
    let concurrency = args.concurrency;
    let login_concurrency = args.login_concurrency;
    let (
        idle,
        loaded,
        (logins_per_s, idle_logins, storm_logins),
        (refresh_per_s, refresh_cpu_ms),
        search_per_s,
    ) = runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        wait_ready(&client, &base).await;

        let idle = cheap_latencies(
            &client,
            &base,
            Duration::from_secs(3),
            Duration::from_millis(2),
        )
        .await;

        // Login latency with nothing else going on.
        let login_url = format!("{base}/agent-access-tokens");
        let mut idle_logins = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            assert_eq!(post(&client, &login_url, &login_body()).await.0, 201);
            idle_logins.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        idle_logins.sort_by(f64::total_cmp);

        // Logins at saturation, with cheap requests measured meanwhile.
        let login_client = client.clone();
        let storm_latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = storm_latencies.clone();
        let logins = tokio::spawn(saturate(login_concurrency, phase, move |_| {
            let client = login_client.clone();
            let url = login_url.clone();
            let recorded = recorded.clone();
            async move {
                let started = Instant::now();
                let ok = post(&client, &url, &login_body()).await.0 == 201;
                recorded
                    .lock()
                    .unwrap()
                    .push(started.elapsed().as_secs_f64() * 1000.0);
                ok
            }
        }));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let loaded = cheap_latencies(
            &client,
            &base,
            phase - Duration::from_secs(1),
            Duration::from_millis(2),
        )
        .await;
        let logins_per_s = logins.await.unwrap();
        let mut storm_logins = storm_latencies.lock().unwrap().clone();
        storm_logins.sort_by(f64::total_cmp);
        let logins = (logins_per_s, idle_logins, storm_logins);

        // Refresh-token exchanges: one chain per worker, each refresh feeds the next.
        let mut chains = Vec::new();
        for _ in 0..concurrency {
            chains.push(tokio::sync::Mutex::new(login(&client, &base).await.1));
        }
        let chains = Arc::new(chains);
        let refresh_client = client.clone();
        let refresh_url = format!("{base}/refresh-tokens");
        let cpu_before = cpu_seconds(pid);
        let refresh_per_s = saturate(concurrency, phase, move |worker| {
            let client = refresh_client.clone();
            let url = refresh_url.clone();
            let chains = chains.clone();
            async move {
                let mut token = chains[worker].lock().await;
                let body =
                    json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":*token}}});
                let (status, body) = post(&client, &url, &body).await;
                if status != 201 {
                    return false;
                }
                *token = body["data"]["attributes"]["refreshToken"]
                    .as_str()
                    .unwrap()
                    .to_string();
                true
            }
        })
        .await;
        let refresh_cpu_ms =
            (cpu_seconds(pid) - cpu_before) * 1000.0 / (refresh_per_s * phase.as_secs_f64());

        // Authenticated customer search.
        let (agent, _) = login(&client, &base).await;
        let search_client = client.clone();
        let search_base = base.clone();
        let counter = Arc::new(AtomicU64::new(0));
        let search_per_s = saturate(concurrency, phase, move |_| {
            let client = search_client.clone();
            let n = counter.fetch_add(7919, Ordering::Relaxed) % 10_000;
            let url = format!("{search_base}/agent-customer-search?q=user{n}&page[limit]=10");
            let agent = agent.clone();
            async move {
                client
                    .get(url)
                    .header("X-Agent-Authorization", format!("Bearer {agent}"))
                    .send()
                    .await
                    .map(|r| r.status() == 200)
                    .unwrap_or(false)
            }
        })
        .await;
        (
            idle,
            loaded,
            logins,
            (refresh_per_s, refresh_cpu_ms),
            search_per_s,
        )
    });
    let rss = server.peak_rss_mib();
    drop(server);
    drop(pg_guard);
    #[cfg(feature = "mysql")]
    drop(mysql_guard);
    let _ = std::fs::remove_dir_all(&dir);

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!();
    println!(
        "glue load benchmark — {} cores ({cpu}), {backend}, bcrypt cost {}, {} s per phase, {} concurrent clients, {} customers",
        cores(),
        args.bcrypt_cost,
        args.seconds,
        concurrency,
        args.customers
    );
    println!();
    println!("| measure | value | limit / reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| raw bcrypt verifications/s, `bcrypt` crate (all cores) | {bcrypt_per_s:.1} | — | — |"
    );
    println!("| raw bcrypt verifications/s, bcrypt-rust scalar (all cores) | {scalar_per_s:.1} | {bcrypt_per_s:.1} (`bcrypt` crate) | {:.2} |", scalar_per_s / bcrypt_per_s);
    println!(
        "| raw bcrypt verifications/s, bcrypt-rust batch, {lanes} lanes ({}) (all cores) | {batch_per_s:.1} | {scalar_per_s:.1} (scalar) | {:.2} |",
        bcrypt_rust::detected_backend(),
        batch_per_s / scalar_per_s
    );
    println!(
        "| logins/s at saturation ({login_concurrency} clients) | {logins_per_s:.1} | {bcrypt_per_s:.1} (`bcrypt` crate) / {scalar_per_s:.1} (scalar) / {batch_per_s:.1} (batch) | {:.2} / {:.2} / {:.2} |",
        logins_per_s / bcrypt_per_s,
        logins_per_s / scalar_per_s,
        logins_per_s / batch_per_s
    );
    println!(
        "| login latency p50 / p99, idle (ms) | {:.0} / {:.0} | one scalar verification: {:.0} ms (`bcrypt` crate {:.0} ms) | — |",
        percentile(&idle_logins, 0.5),
        percentile(&idle_logins, 0.99),
        1000.0 * cores() as f64 / scalar_per_s,
        1000.0 * cores() as f64 / bcrypt_per_s
    );
    println!(
        "| login latency p50 / p99, saturation (ms) | {:.0} / {:.0} | — | — |",
        percentile(&storm_logins, 0.5),
        percentile(&storm_logins, 0.99)
    );
    println!(
        "| cheap request p50 / p99, idle (ms) | {:.2} / {:.2} | — | — |",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99)
    );
    println!(
        "| cheap request p50 / p99, logins saturating (ms) | {:.2} / {:.2} | ≤ 5 ms and ≤ 3 × idle p99 | {:.2} × idle p99 |",
        percentile(&loaded, 0.5),
        percentile(&loaded, 0.99),
        percentile(&loaded, 0.99) / percentile(&idle, 0.99)
    );
    println!("| raw RS256 signatures/s (all cores) | {sign_per_s:.0} | — | — |");
    println!(
        "| refresh-token exchanges/s ({backend}) | {refresh_per_s:.0} | {sign_per_s:.0} (raw RS256) | {:.2} |",
        refresh_per_s / sign_per_s
    );
    let sign_cpu_ms = 1000.0 * cores() as f64 / sign_per_s;
    println!(
        "| service CPU per refresh / per raw signature (ms) | {refresh_cpu_ms:.2} / {sign_cpu_ms:.2} | the service alone: {:.0} refreshes/s on all cores | {:.2} |",
        1000.0 * cores() as f64 / refresh_cpu_ms,
        sign_cpu_ms / refresh_cpu_ms
    );
    println!(
        "| agent customer searches/s ({} customers) | {search_per_s:.0} | — | — |",
        args.customers
    );
    println!("| peak resident memory of the service (MiB) | {rss:.1} | ≤ 64 MiB | — |");
}
