//! `tailor`: the command-line adapter. It reads files and the clock, calls the core, prints the answer.
//!
//! Exit codes: 0 success, 1 invalid input (a bundle, request or profile with errors), 2 usage errors
//! (unknown flags, unreadable paths).

mod report;
mod serve;

// The server allocates small, short-lived buffers per request on two threads; mimalloc measured
// faster than the system allocator under `scripts/bench-serve.sh` (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tailor::bundle::{self, CheckedBundle};
use tailor::diagnostic::{Diagnostics, SourceFile};
use tailor::wire::{DecideRequest, ErrorResponse};
use tailor::Engine;

#[derive(Parser)]
#[command(
    name = "tailor",
    version,
    about = "Real-time personalization engine: check, build and try rule bundles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ErrorFormat {
    /// file:line:col, the underlined source and a help line
    Human,
    /// one JSON array of {code, message, file, line, column, help} records on stdout
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate bundles (directories of TOML files, or built JSON artifacts) and report every error.
    Check {
        /// Bundle directories or artifact files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// How to print errors.
        #[arg(long, value_enum, default_value = "human")]
        error_format: ErrorFormat,
    },
    /// Compile a bundle directory into one deployable JSON artifact (with its SHA-256 content hash).
    Build {
        /// Bundle directory.
        dir: PathBuf,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Sign the artifact with this Ed25519 secret key file (from `tailor keygen`).
        #[arg(long, value_name = "KEY_FILE")]
        sign: Option<PathBuf>,
        /// How to print errors.
        #[arg(long, value_enum, default_value = "human")]
        error_format: ErrorFormat,
    },
    /// Make an Ed25519 key pair for signing bundles: NAME.key (secret, mode 0600) and NAME.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, default_value = "tailor-signing")]
        out: PathBuf,
    },
    /// Run the personalization server (HTTP API, embedded profile store, exposure log).
    Serve(Box<ServeArgs>),
    /// Load profile snapshots into a server's store: JSON lines, each a snapshot with `visitor_id`.
    Import {
        /// The server's data directory.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// JSON-lines file (`-` for stdin).
        file: PathBuf,
    },
    /// Experiment report from a server's exposure log: exposed visitors, conversions, conversion rate,
    /// lift over control with a 95 % confidence interval, and a sample-ratio-mismatch test per experience.
    Report {
        /// The server's data directory.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The event stream that counts as a conversion when it happens after the first exposure.
        #[arg(long, default_value = "purchases")]
        conversion: String,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Decide placements for one request and print the JSON response.
    Decide {
        /// Bundle directory or artifact file.
        #[arg(long)]
        bundle: PathBuf,
        /// Request JSON file (`-` for stdin).
        #[arg(long)]
        request: PathBuf,
        /// Profile snapshot JSON file.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Decision time, RFC 3339 (default: the system clock).
        #[arg(long)]
        now: Option<String>,
        /// Add a trace explaining every decision.
        #[arg(long)]
        explain: bool,
        /// Fill `geo` from `context.ip` with this MaxMind DB when the request has no `geo`.
        #[arg(long)]
        geoip_db: Option<PathBuf>,
        /// Fill `geo` from `X-Geo-*`/`CF-*` location headers (only for requests from a trusted CDN).
        #[arg(long)]
        trust_geo_headers: bool,
    },
    /// Detect devices: one User-Agent per line on stdin (or, with --json, one `{"user_agent", "headers"}`
    /// object per line, for Client Hints); print one JSON object per line.
    Device {
        /// Read JSON lines with `user_agent` and `headers` instead of plain User-Agent lines.
        #[arg(long)]
        json: bool,
    },
    /// Look up IP addresses (one per line on stdin) in a MaxMind DB; print one JSON object per line.
    Geo {
        /// MaxMind DB file (GeoIP2/GeoLite2 City or Country, Enterprise, Anonymous-IP, DB-IP).
        #[arg(long)]
        db: PathBuf,
    },
    /// Preview allocation: decide for N synthetic visitors and show the share of each outcome.
    Simulate {
        /// Bundle directory or artifact file.
        #[arg(long)]
        bundle: PathBuf,
        /// Number of synthetic visitors.
        #[arg(long, default_value_t = 10_000)]
        visitors: u32,
        /// Request JSON file giving the shared context (placements default to all).
        #[arg(long)]
        request: Option<PathBuf>,
        /// Profile snapshot JSON file shared by all visitors.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Decision time, RFC 3339 (default: the system clock).
        #[arg(long)]
        now: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `tailor serve` flags.
#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Data directory: the SQLite store of profiles, exposures and deployed bundles.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Bundle to serve (directory or artifact); recorded as a deployment when it differs from the active
    /// one. Without it the store's active deployment is served.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// MaxMind DB for `geo.*` from the client IP.
    #[arg(long)]
    geoip_db: Option<PathBuf>,
    /// Take location from `X-Geo-*`/`CF-*` headers (only behind a CDN that sets and sanitizes them).
    #[arg(long)]
    trust_geo_headers: bool,
    /// Bearer token for the admin and ingestion routes (without it they answer 403).
    #[arg(long, env = "TAILOR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Require bundles signed by this Ed25519 public key (hex, or a `.pub` file); repeatable.
    #[arg(long = "trusted-key", value_name = "KEY")]
    trusted_keys: Vec<String>,
    /// Rebuild and deploy this bundle directory when its files change (local authoring).
    #[arg(long)]
    watch: Option<PathBuf>,
    /// Allow browser calls from this origin (`*` for any); repeatable. Off by default.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Profile cache size in MiB (snapshots and known absences).
    #[arg(long, default_value_t = 256)]
    cache_mb: u64,
    /// Seconds a cached profile is trusted (other writers to the same store show up after this).
    #[arg(long, default_value_t = 300)]
    cache_ttl_secs: u64,
    /// Largest request body, except bundle deploys.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Largest bundle artifact accepted by `PUT /v1/bundle`.
    #[arg(long, default_value_t = 32 << 20)]
    max_bundle_bytes: usize,
    /// Most events in one `POST /v1/events`.
    #[arg(long, default_value_t = 1000)]
    max_events_per_batch: usize,
    /// Largest stored profile snapshot.
    #[arg(long, default_value_t = 64 << 10)]
    max_profile_bytes: usize,
    /// Events kept per stream in a snapshot (the oldest are dropped first).
    #[arg(long, default_value_t = 200)]
    max_events_per_stream: usize,
    /// Serve the playground at `/` from this directory (the built `wasm/browser` package:
    /// `bash scripts/build-wasm.sh`). It exposes the active bundle's rules at `/bundle.json`.
    #[arg(long, value_name = "DIR")]
    playground: Option<PathBuf>,
    /// Log filter (tracing env-filter syntax): `info` logs lifecycle events, `debug` every request.
    #[arg(long, env = "TAILOR_LOG", default_value = "info")]
    log: String,
}

/// A failure with its exit code; the message is already formatted.
pub(crate) struct Fail(u8, pub(crate) String);

fn usage(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            paths,
            error_format,
        } => cmd_check(&paths, error_format),
        Command::Build {
            dir,
            output,
            sign,
            error_format,
        } => cmd_build(&dir, &output, sign.as_deref(), error_format),
        Command::Keygen { out } => cmd_keygen(&out),
        Command::Serve(args) => cmd_serve(*args),
        Command::Import { data, file } => cmd_import(&data, &file),
        Command::Report {
            data,
            conversion,
            json,
        } => report::run(&data, &conversion, json).map_err(|e| Fail(1, format!("error: {e}"))),
        Command::Decide {
            bundle,
            request,
            profile,
            now,
            explain,
            geoip_db,
            trust_geo_headers,
        } => cmd_decide(
            &bundle,
            &request,
            profile.as_deref(),
            now.as_deref(),
            explain,
            Enrich {
                geoip_db,
                trust_geo_headers,
            },
        ),
        Command::Geo { db } => cmd_geo(&db),
        Command::Device { json } => cmd_device(json),
        Command::Simulate {
            bundle,
            visitors,
            request,
            profile,
            now,
            json,
        } => cmd_simulate(
            &bundle,
            visitors,
            request.as_deref(),
            profile.as_deref(),
            now.as_deref(),
            json,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(code)
        }
    }
}

/// Every `.toml` file under `dir`, sorted by relative path so file order (the tie-breaker between
/// experiences of equal priority across files) is stable on every machine.
pub(crate) fn read_dir_sources(dir: &Path) -> Result<Vec<SourceFile>, Fail> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| usage(format!("error: cannot read `{}`: {e}", d.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| usage(format!("error: cannot read `{}`: {e}", d.display())))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| usage(format!("error: cannot read `{}`: {e}", p.display())))?;
            Ok(SourceFile {
                name: p.display().to_string(),
                text,
            })
        })
        .collect()
}

enum Loaded {
    Ok(Box<CheckedBundle>, Diagnostics, Vec<SourceFile>),
    Invalid(Diagnostics, Vec<SourceFile>),
}

fn load(path: &Path) -> Result<Loaded, Fail> {
    if path.is_dir() {
        let files = read_dir_sources(path)?;
        Ok(match bundle::load_sources(&files) {
            Ok((c, d)) => Loaded::Ok(Box::new(c), d, files),
            Err(d) => Loaded::Invalid(d, files),
        })
    } else {
        let bytes = std::fs::read(path)
            .map_err(|e| usage(format!("error: cannot read `{}`: {e}", path.display())))?;
        let name = path.display().to_string();
        Ok(match bundle::load_artifact(&bytes) {
            Ok(c) => Loaded::Ok(Box::new(c), Diagnostics::default(), Vec::new()),
            Err(d) => {
                let mut items = d.into_vec();
                for x in &mut items {
                    x.file.get_or_insert_with(|| name.clone());
                }
                let mut d = Diagnostics::default();
                for x in items {
                    d.push(x);
                }
                Loaded::Invalid(d, Vec::new())
            }
        })
    }
}

fn report(d: &Diagnostics, files: &[SourceFile], format: ErrorFormat) {
    match format {
        ErrorFormat::Human => eprint!("{}", d.render(files)),
        ErrorFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(d.items()).unwrap_or_default()
        ),
    }
}

fn cmd_check(paths: &[PathBuf], format: ErrorFormat) -> Result<(), Fail> {
    let mut all = Diagnostics::default();
    let mut failed = false;
    for p in paths {
        match load(p)? {
            Loaded::Ok(c, d, files) => {
                if format == ErrorFormat::Human {
                    eprint!("{}", d.render(&files));
                    eprintln!(
                        "ok: `{}` version {} ({} placements, {} segments) {}",
                        c.def.id,
                        c.def.version,
                        c.def.placements.len(),
                        c.def.segments.len(),
                        c.hash
                    );
                }
                for x in d.into_vec() {
                    all.push(x);
                }
            }
            Loaded::Invalid(d, files) => {
                failed = true;
                if format == ErrorFormat::Human {
                    report(&d, &files, format);
                }
                for x in d.into_vec() {
                    all.push(x);
                }
            }
        }
    }
    if format == ErrorFormat::Json {
        report(&all, &[], format);
    }
    if failed {
        Err(Fail(1, String::new()))
    } else {
        Ok(())
    }
}

fn cmd_build(
    dir: &Path,
    output: &Path,
    sign: Option<&Path>,
    format: ErrorFormat,
) -> Result<(), Fail> {
    let key = match sign {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| usage(format!("error: cannot read `{}`: {e}", p.display())))?;
            Some(
                tailor::signing::SecretKey::from_text(&text)
                    .map_err(|e| usage(format!("error: `{}`: {e}", p.display())))?,
            )
        }
        None => None,
    };
    if !dir.is_dir() {
        return Err(usage(format!(
            "error: `{}` is not a bundle directory",
            dir.display()
        )));
    }
    match load(dir)? {
        Loaded::Ok(c, d, files) => {
            if format == ErrorFormat::Human {
                eprint!("{}", d.render(&files));
            }
            let mut artifact = bundle::to_artifact(&c);
            if let Some(k) = &key {
                tailor::signing::sign(&mut artifact, k);
                eprintln!("signed with key {}", k.public().key_id());
            }
            let json = serde_json::to_string_pretty(&artifact)
                .map_err(|e| Fail(1, format!("error: {e}")))?;
            std::fs::write(output, json + "\n")
                .map_err(|e| usage(format!("error: cannot write `{}`: {e}", output.display())))?;
            eprintln!(
                "built `{}` version {} → {} ({})",
                c.def.id,
                c.def.version,
                output.display(),
                c.hash
            );
            Ok(())
        }
        Loaded::Invalid(d, files) => {
            report(&d, &files, format);
            Err(Fail(1, String::new()))
        }
    }
}

fn engine(path: &Path) -> Result<Engine, Fail> {
    match load(path)? {
        Loaded::Ok(c, _, _) => Ok(Engine::new(*c)),
        Loaded::Invalid(d, files) => {
            report(&d, &files, ErrorFormat::Human);
            Err(Fail(
                1,
                format!("error: the bundle `{}` is invalid", path.display()),
            ))
        }
    }
}

fn now_ms(now: Option<&str>) -> Result<i64, Fail> {
    match now {
        Some(s) => tailor::time::parse_timestamp(s)
            .ok_or_else(|| usage(format!("error: `--now {s}` is not an RFC 3339 timestamp"))),
        None => {
            let d = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| usage(format!("error: clock: {e}")))?;
            Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }
    }
}

fn read_input(path: &Path) -> Result<Vec<u8>, Fail> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| usage(format!("error: stdin: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| usage(format!("error: cannot read `{}`: {e}", path.display())))
}

fn invalid(e: ErrorResponse) -> Fail {
    Fail(
        1,
        serde_json::to_string_pretty(&e).unwrap_or_else(|_| e.to_string()),
    )
}

/// How `decide` fills context the request did not resolve itself.
struct Enrich {
    geoip_db: Option<PathBuf>,
    trust_geo_headers: bool,
}

/// Fill `device` from the User-Agent and Client Hints headers, and `geo` from trusted headers or the IP,
/// where the request left them out. What the caller sent always wins.
fn enrich(req: &mut DecideRequest, how: &Enrich) -> Result<(), Fail> {
    let ctx = &mut req.context;
    if ctx.device.is_none() {
        if let Some(ua) = ctx
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            .map(|(_, v)| v.clone())
        {
            let parser =
                tailor::device::UaParser::builtin().map_err(|e| Fail(1, format!("error: {e}")))?;
            ctx.device = Some(tailor::device::detect(&parser, &ua, &ctx.headers).to_wire());
        }
    }
    if ctx.geo.is_none() && how.trust_geo_headers {
        ctx.geo = tailor::geoip::geo_from_headers(&ctx.headers);
    }
    if let (None, Some(db), Some(ip)) = (&ctx.geo, &how.geoip_db, ctx.ip.clone()) {
        let bytes = std::fs::read(db)
            .map_err(|e| usage(format!("error: cannot read `{}`: {e}", db.display())))?;
        let geo = tailor::geoip::GeoDb::from_bytes(bytes)
            .map_err(|e| Fail(1, format!("error: `{}`: {e}", db.display())))?;
        // An unknown or malformed IP leaves `geo` empty: the decision still succeeds.
        ctx.geo = geo.lookup_str(&ip).ok().flatten();
    }
    Ok(())
}

fn cmd_decide(
    bundle: &Path,
    request: &Path,
    profile: Option<&Path>,
    now: Option<&str>,
    explain: bool,
    how: Enrich,
) -> Result<(), Fail> {
    let engine = engine(bundle)?;
    let now = now_ms(now)?;
    let req_bytes = read_input(request)?;
    let mut req = DecideRequest::from_json(&req_bytes).map_err(invalid)?;
    req.explain |= explain;
    engine.validate(&req).map_err(invalid)?;
    enrich(&mut req, &how)?;
    let profile = match profile {
        Some(p) => Some(engine.decode_profile(&read_input(p)?).map_err(invalid)?),
        None => None,
    };
    let resp = engine.decide(&req, profile.as_ref(), now);
    println!(
        "{}",
        serde_json::to_string_pretty(&resp).map_err(|e| Fail(1, format!("error: {e}")))?
    );
    Ok(())
}

fn cmd_device(json: bool) -> Result<(), Fail> {
    use std::io::{BufRead, Write};
    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(default)]
        user_agent: String,
        #[serde(default)]
        headers: std::collections::BTreeMap<tailor::wire::Text, tailor::wire::Text>,
    }
    let parser = tailor::device::UaParser::builtin().map_err(|e| Fail(1, format!("error: {e}")))?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| usage(format!("error: stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = if json {
            match serde_json::from_str::<Line>(&line) {
                Ok(l) => {
                    serde_json::to_value(tailor::device::detect(&parser, &l.user_agent, &l.headers))
                        .unwrap_or_default()
                }
                Err(e) => {
                    serde_json::json!({ "error": format!("not a JSON line with `user_agent` and `headers`: {e}") })
                }
            }
        } else {
            serde_json::to_value(tailor::device::detect(
                &parser,
                line.trim_end_matches('\r'),
                &Default::default(),
            ))
            .unwrap_or_default()
        };
        writeln!(out, "{record}").map_err(|e| usage(format!("error: stdout: {e}")))?;
    }
    out.flush()
        .map_err(|e| usage(format!("error: stdout: {e}")))?;
    Ok(())
}

fn cmd_geo(db: &Path) -> Result<(), Fail> {
    use std::io::{BufRead, Write};
    let bytes = std::fs::read(db)
        .map_err(|e| usage(format!("error: cannot read `{}`: {e}", db.display())))?;
    let geo = tailor::geoip::GeoDb::from_bytes(bytes)
        .map_err(|e| Fail(1, format!("error: `{}`: {e}", db.display())))?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| usage(format!("error: stdin: {e}")))?;
        let ip = line.trim();
        if ip.is_empty() {
            continue;
        }
        let record = match geo.lookup_str(ip) {
            Ok(Some(g)) => {
                let mut v = serde_json::to_value(g).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("ip".into(), ip.into());
                }
                v
            }
            Ok(None) => serde_json::json!({ "ip": ip, "found": false }),
            Err(e) => serde_json::json!({ "ip": ip, "error": e.message }),
        };
        writeln!(out, "{record}").map_err(|e| usage(format!("error: stdout: {e}")))?;
    }
    out.flush()
        .map_err(|e| usage(format!("error: stdout: {e}")))?;
    Ok(())
}

fn cmd_simulate(
    bundle: &Path,
    visitors: u32,
    request: Option<&Path>,
    profile: Option<&Path>,
    now: Option<&str>,
    json: bool,
) -> Result<(), Fail> {
    let engine = engine(bundle)?;
    let now = now_ms(now)?;
    let req: DecideRequest = match request {
        Some(r) => DecideRequest::from_json(&read_input(r)?).map_err(invalid)?,
        None => DecideRequest::default(),
    };
    let profile = match profile {
        Some(p) => Some(engine.decode_profile(&read_input(p)?).map_err(invalid)?),
        None => None,
    };
    let sim = engine.simulate(&req, profile.as_ref(), now, visitors);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&sim).map_err(|e| Fail(1, format!("error: {e}")))?
        );
        return Ok(());
    }
    let w0 = sim
        .rows
        .iter()
        .map(|r| r.placement.len())
        .max()
        .unwrap_or(0)
        .max(9);
    let w1 = sim
        .rows
        .iter()
        .map(|r| r.experience.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let w2 = sim
        .rows
        .iter()
        .map(|r| r.variant.len())
        .max()
        .unwrap_or(0)
        .max(7);
    println!(
        "{:<w0$}  {:<w1$}  {:<w2$}  {:>9}  {:>7}",
        "placement", "experience", "variant", "visitors", "share"
    );
    for r in &sim.rows {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>9}  {:>6.2}%",
            r.placement,
            r.experience,
            r.variant,
            r.visitors,
            r.share * 100.0
        );
    }
    println!("{} synthetic visitors", sim.visitors);
    Ok(())
}

fn cmd_keygen(out: &Path) -> Result<(), Fail> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Fail(1, format!("error: no OS randomness: {e}")))?;
    let key = tailor::signing::SecretKey::from_seed(seed);
    let secret = out.with_extension("key");
    let public = out.with_extension("pub");
    for p in [&secret, &public] {
        if p.exists() {
            return Err(usage(format!(
                "error: `{}` exists; not overwriting a key",
                p.display()
            )));
        }
    }
    write_private(&secret, &(key.to_text() + "\n"))
        .map_err(|e| usage(format!("error: cannot write `{}`: {e}", secret.display())))?;
    std::fs::write(&public, key.public().to_text() + "\n")
        .map_err(|e| usage(format!("error: cannot write `{}`: {e}", public.display())))?;
    eprintln!(
        "wrote {} (secret: keep it out of the repository) and {} (key id {})",
        secret.display(),
        public.display(),
        key.public().key_id()
    );
    println!("{}", key.public().to_text());
    Ok(())
}

#[cfg(unix)]
fn write_private(p: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(p: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(p, text)
}

fn cmd_serve(a: ServeArgs) -> Result<(), Fail> {
    let filter = tracing_subscriber::EnvFilter::try_new(&a.log)
        .map_err(|e| usage(format!("error: --log {}: {e}", a.log)))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut trusted_keys = Vec::new();
    for k in &a.trusted_keys {
        let text = if Path::new(k).is_file() {
            std::fs::read_to_string(k)
                .map_err(|e| usage(format!("error: cannot read `{k}`: {e}")))?
        } else {
            k.clone()
        };
        trusted_keys.push(
            tailor::signing::PublicKey::from_text(&text)
                .map_err(|e| usage(format!("error: --trusted-key {k}: {e}")))?,
        );
    }
    if a.watch.is_some() && !trusted_keys.is_empty() {
        return Err(usage(
            "error: --watch builds unsigned bundles; it cannot be combined with --trusted-key",
        ));
    }
    if a.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(usage(
            "error: the admin token must be at least 16 characters",
        ));
    }
    let cfg = serve::Config {
        listen: a.listen,
        data: a.data,
        bundle: a.bundle.or_else(|| a.watch.clone()),
        geoip_db: a.geoip_db,
        trust_geo_headers: a.trust_geo_headers,
        admin_token: a.admin_token,
        trusted_keys,
        watch: a.watch,
        cors_origins: a.cors_origins,
        cache_bytes: a.cache_mb.saturating_mul(1 << 20),
        cache_ttl: std::time::Duration::from_secs(a.cache_ttl_secs),
        max_body_bytes: a.max_body_bytes,
        max_bundle_bytes: a.max_bundle_bytes,
        max_events_per_batch: a.max_events_per_batch,
        limits: tailor::snapshot::ProfileLimits {
            max_bytes: a.max_profile_bytes,
            max_events_per_stream: a.max_events_per_stream,
        },
        playground: a.playground,
    };
    serve::run(cfg).map_err(|e| Fail(1, format!("error: {e}")))
}

fn cmd_import(data: &Path, file: &Path) -> Result<(), Fail> {
    use std::io::BufRead;
    let store = serve::store::Store::open(
        data,
        serve::store::CacheConfig {
            max_bytes: 1 << 20,
            ttl: std::time::Duration::from_secs(1),
        },
    )
    .map_err(|e| Fail(1, format!("error: {e}")))?;
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(file).map_err(
            |e| usage(format!("error: cannot read `{}`: {e}", file.display())),
        )?))
    };
    let limits = tailor::snapshot::ProfileLimits {
        max_bytes: 64 << 10,
        max_events_per_stream: 200,
    };
    let mut bad: Option<String> = None;
    let mut lines = reader.lines().enumerate();
    let rows = std::iter::from_fn(|| {
        for (i, line) in lines.by_ref() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    bad = Some(format!("line {}: {e}", i + 1));
                    return None;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let id = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| {
                    v.get("visitor_id")
                        .and_then(|x| x.as_str())
                        .map(str::to_string)
                });
            let Some(id) = id else {
                bad = Some(format!(
                    "line {}: not a JSON snapshot with a `visitor_id`",
                    i + 1
                ));
                return None;
            };
            return match tailor::snapshot::normalize_snapshot(&id, line.as_bytes(), limits) {
                Ok(s) => Some((id, s)),
                Err(e) => {
                    bad = Some(format!("line {}: {}", i + 1, e.message));
                    None
                }
            };
        }
        None
    });
    let n = store
        .import(rows, serve::now_ms())
        .map_err(|e| Fail(1, format!("error: {e}")))?;
    eprintln!("imported {n} profiles into {}", data.display());
    match bad {
        Some(msg) => Err(Fail(
            1,
            format!("error: stopped at {msg} (everything before it is committed)"),
        )),
        None => Ok(()),
    }
}
