//! hg-keyvault-emulator: a local Azure Key Vault (secrets) data plane and Entra ID token service
//! on loopback HTTPS, for hg-keyvault's tests and demo. Not shipped.

mod app;
mod ci_oidc;
mod control;
mod control_identity;
mod entra;
mod entra_apps;
mod faults;
mod federation;
mod http;
mod identity;
mod jwt;
mod principals;
mod request_log;
mod rs256;
mod server;
mod tls;
mod vault;

use clap::Parser;
use serde_json::json;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Local Azure Key Vault + Entra ID emulator on loopback HTTPS (tests only)"
)]
struct Args {
    /// Loopback address to bind (never a public one).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where ca.pem and the request log go; defaults to a fresh temporary directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// PEM CA certificate to sign the server certificate with (needs --ca-key).
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// PEM private key of --ca-cert.
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// JSON-lines request log; defaults to <state-dir>/requests.jsonl.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// A fault as a JSON object (repeatable), same format as POST /_emulator/faults.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
    /// The vault's permission model: `rbac` (403 ForbiddenByRbac) or `access-policy` (403
    /// ForbiddenByPolicy, "does not have secrets get permission").
    #[arg(long, default_value = "rbac", value_parser = ["rbac", "access-policy"])]
    permission_model: String,
    /// Lifetime (expires_in) of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime: u64,
    /// A plain-HTTP managed identity endpoint, ROLE=ADDR:PORT (repeatable; PORT 0 picks a free
    /// one). ROLE: imds, arc, cloudshell, ml, appservice. ADDR: loopback, or 169.254.169.254
    /// for imds (bindable only in a network namespace that has it on its lo).
    #[arg(long = "http-listen", value_name = "ROLE=ADDR:PORT", value_parser = parse_listen)]
    http_listen: Vec<(identity::Role, SocketAddr)>,
    /// Where the Arc endpoint writes its key files; defaults to <state-dir>/arc-tokens.
    #[arg(long)]
    arc_token_dir: Option<PathBuf>,
}

/// Azure's link-local IMDS address; the only non-loopback address the emulator will bind.
const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

fn parse_listen(text: &str) -> Result<(identity::Role, SocketAddr), String> {
    let (role, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ROLE=ADDR:PORT"))?;
    let role: identity::Role = role.parse()?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("{addr:?} is not ADDR:PORT: {e}"))?;
    let imds = role == identity::Role::Imds && addr.ip() == IpAddr::V4(IMDS_ADDR);
    if !addr.ip().is_loopback() && !imds {
        return Err(format!(
            "{} is neither loopback nor 169.254.169.254 for imds",
            addr.ip()
        ));
    }
    if imds && !in_own_network_namespace() {
        return Err(
            "169.254.169.254 is served only inside a test's own network namespace (unshare -n, \
             see tests/netns.py), never in the machine's"
                .to_owned(),
        );
    }
    Ok((role, addr))
}

/// True in a network namespace a test made with `unshare -n`: its only device is the loopback
/// (where the test put 169.254.169.254), so nothing bound there can reach a network.
fn in_own_network_namespace() -> bool {
    let Ok(dev) = std::fs::read_to_string("/proc/self/net/dev") else {
        return false;
    };
    // Two header lines, then one `name: counters` line per device.
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .all(|(name, _)| name.trim() == "lo")
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn fresh_state_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "hg-keyvault-emulator-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn run(args: Args) -> Result<(), BoxError> {
    if !args.bind.is_loopback() {
        return Err(format!("--bind {} is not a loopback address", args.bind).into());
    }
    let mut faults = Vec::new();
    for spec in &args.faults {
        faults.extend(
            control::parse_faults(spec.as_bytes()).map_err(|e| format!("--fault {spec}: {e}"))?,
        );
    }
    let state_dir = match args.state_dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => fresh_state_dir()?,
    };
    let state_dir = std::fs::canonicalize(&state_dir)?;
    let ca = args.ca_cert.as_deref().zip(args.ca_key.as_deref());
    let tls = tls::server_tls(ca)?;
    let ca_file = state_dir.join("ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem)?;
    let arc_token_dir = args
        .arc_token_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("arc-tokens"));
    std::fs::create_dir_all(&arc_token_dir)?;
    let arc_token_dir = std::fs::canonicalize(&arc_token_dir)?;
    let mut plain = Vec::new();
    for (role, addr) in &args.http_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("--http-listen {}={addr}: {e}", role.name()))?;
        plain.push((*role, listener));
    }
    let log_path = args
        .request_log
        .unwrap_or_else(|| state_dir.join("requests.jsonl"));

    let listener = tokio::net::TcpListener::bind((args.bind, args.port)).await?;
    let port = listener.local_addr()?.port();
    let host = match args.bind {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let base_url = format!("https://{host}:{port}");

    let mut fault_set = faults::Faults::default();
    fault_set.replace(faults);
    let app = Arc::new(app::App {
        base_url: base_url.clone(),
        tenant_id: principals::TENANT_ID,
        principals: principals::default_principals(),
        key: jwt::TokenKey::random(),
        identity_header: principals::random_secret(),
        msi_secret: principals::random_secret(),
        token_lifetime: args.token_lifetime,
        state_dir: state_dir.clone(),
        arc_token_dir: arc_token_dir.clone(),
        store: Mutex::default(),
        faults: Mutex::new(fault_set),
        ci: ci_oidc::CiIssuers::new(),
        federated: Mutex::default(),
        host: Mutex::default(),
        arc: Mutex::default(),
        counts: Mutex::default(),
        log: request_log::RequestLog::open(&log_path)
            .map_err(|e| format!("cannot open request log {}: {e}", log_path.display()))?,
        access_policies: (args.permission_model == "access-policy").into(),
        frozen_clock: Mutex::new(None),
        entra: Mutex::default(),
    });

    let mut http = serde_json::Map::new();
    for (role, listener) in &plain {
        let addr = listener.local_addr()?;
        http.insert(role.name().into(), json!(format!("http://{addr}")));
    }
    let ready = json!({
        "vault_url": format!("{base_url}/"),
        "authority_host": base_url,
        "tenant_id": app.tenant_id,
        "ca_file": ca_file,
        "identity_endpoint": format!("{base_url}/msi/token"),
        "identity_header": app.identity_header,
        "control_url": format!("{base_url}/_emulator"),
        "request_log": log_path,
        "state_dir": state_dir,
        "pid": std::process::id(),
        "port": port,
        "principals": app.principals,
        "permission_model": args.permission_model,
        "http": http,
        "msi_secret": app.msi_secret,
        "arc_token_dir": arc_token_dir,
        "oidc": ci_oidc::ready_info(&app),
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    let mut servers = vec![tokio::spawn(server::accept_loop(
        app.clone(),
        listener,
        acceptor,
    ))];
    for (role, listener) in plain {
        servers.push(tokio::spawn(server::accept_plain(
            app.clone(),
            listener,
            role,
        )));
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    for server in servers {
        server.abort();
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // Both aws-lc-rs and ring may be compiled in (through dependencies): pick one explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hg-keyvault-emulator: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // Hung requests (the `hang` fault) must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hg-keyvault-emulator: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
