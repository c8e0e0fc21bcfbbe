//! Two twinlease servers in this process, partners over mutual TLS on loopback (primary
//! 127.0.0.1, secondary 127.0.0.2): with certificates from the CA each trusts they reach
//! NORMAL; with a certificate from another CA the
//! partner is refused and neither leaves its lonely states. No root needed.

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{CertifiedIssuer, KeyPair};
use twinlease::dispatch::Server;

#[path = "common/tls.rs"]
mod pki;

/// Certificate (for `name`, signed by `issuer`), key and the CA to trust, written under `dir`;
/// the TOML lines that point at them.
fn tls(
    dir: &Path,
    tag: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    trust: &CertifiedIssuer<'static, KeyPair>,
    peer_name: &str,
) -> String {
    let files = pki::write_cert(dir, tag, name, &[name], issuer, trust);
    format!(
        "tls-cert = \"{}\"\ntls-key = \"{}\"\ntls-ca = \"{}\"\ntls-peer-name = \"{peer_name}\"\n",
        files.cert.display(),
        files.key.display(),
        files.ca.display()
    )
}

fn config(dir: &Path, me: u8, port: u16, tls: &str) -> twinlease::config::Config {
    let role = if me == 1 { "primary" } else { "secondary" };
    let data = dir.join(format!("data{me}"));
    std::fs::create_dir_all(&data).unwrap();
    let text = format!(
        r#"
[server]
data-dir = "{data}"
workers = 2
listen = ["127.0.0.{me}:{dhcp}"]
drop-capabilities = false

[failover]
name = "tls-test"
role = "{role}"
address = "127.0.0.{me}"
port = {port}
peer-address = "127.0.0.{peer}"
peer-port = {port}
mclt = 30
max-response-delay = 10
{tls}
[[subnet4]]
id = 1
subnet = "10.99.0.0/24"
relay-addresses = ["127.0.0.9"]

[[subnet4.pool]]
range = "10.99.0.10-10.99.0.200"
"#,
        data = data.display(),
        dhcp = port + 10 + u16::from(me),
        peer = 3 - me,
    );
    twinlease::config::parse(&text, "tls-test.toml").unwrap()
}

fn state(s: &Server) -> String {
    s.control()
        .failover_status()
        .first()
        .map_or_else(String::new, |r| r.state.to_owned())
}

fn wait_normal(a: &Server, b: &Server, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if state(a) == "normal" && state(b) == "normal" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn partners_over_mutual_tls_reach_normal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::ca("partner CA");
    let t1 = tls(dir.path(), "a", &ca, "a.test", &ca, "b.test");
    let t2 = tls(dir.path(), "b", &ca, "b.test", &ca, "a.test");
    let port = 17_647;
    let a = Server::start(&config(dir.path(), 1, port, &t1)).unwrap();
    let b = Server::start(&config(dir.path(), 2, port, &t2)).unwrap();
    let ok = wait_normal(&a, &b, Duration::from_secs(30));
    let (sa, sb) = (state(&a), state(&b));
    let conn = a.control().failover_status()[0].connected;
    b.shutdown();
    a.shutdown();
    assert!(ok, "not NORMAL over TLS: primary {sa}, secondary {sb}");
    assert!(conn);
}

#[test]
fn a_partner_with_a_certificate_of_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::ca("partner CA");
    let rogue = pki::ca("rogue CA");
    let t1 = tls(dir.path(), "a", &ca, "a.test", &ca, "b.test");
    // The secondary trusts the right CA but presents a certificate the primary does not.
    let t2 = tls(dir.path(), "b", &rogue, "b.test", &ca, "a.test");
    let port = 17_747;
    let a = Server::start(&config(dir.path(), 1, port, &t1)).unwrap();
    let b = Server::start(&config(dir.path(), 2, port, &t2)).unwrap();
    let ok = wait_normal(&a, &b, Duration::from_secs(8));
    let (sa, sb) = (
        a.control().failover_status()[0].clone(),
        b.control().failover_status()[0].clone(),
    );
    b.shutdown();
    a.shutdown();
    assert!(!ok, "reached NORMAL with an untrusted certificate");
    assert!(!sa.connected && !sb.connected, "{sa:?} {sb:?}");
    assert_ne!(sa.state, "normal");
}
