//! Where a provider or host is reached: the provider's public API by default, the YAML's
//! `host`/`port`, or an override URL (`--endpoint NAME=URL`, `EndpointOverrides`).

use tollgate_core::config::ProviderKind;

/// An upstream address and how to speak to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// DNS name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS with SNI = `host`.
    pub tls: bool,
    /// Path prefix before the provider's API paths (no trailing `/`).
    pub path_prefix: String,
}

impl Address {
    /// `host[:port]`, the port left out when it is the scheme's default.
    pub fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The provider kind as written in the YAML and in metric labels (`openai`, `anthropic`, `gemini`).
pub fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gemini",
    }
}

/// The provider's public API host.
pub fn public_api_host(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "api.openai.com",
        ProviderKind::Anthropic => "api.anthropic.com",
        ProviderKind::Gemini => "generativelanguage.googleapis.com",
    }
}

/// The address from the YAML: the public API over TLS, or `host` (port default 80) with TLS
/// only on port 443.
pub fn from_settings(
    kind: ProviderKind,
    host: Option<&str>,
    port: Option<u16>,
    path: Option<&str>,
) -> Address {
    let path_prefix = path.unwrap_or("").trim_end_matches('/').to_string();
    match host {
        None => Address {
            host: public_api_host(kind).to_string(),
            port: port.unwrap_or(443),
            tls: true,
            path_prefix,
        },
        Some(host) => {
            let port = port.unwrap_or(80);
            Address {
                host: host.to_string(),
                port,
                tls: port == 443,
                path_prefix,
            }
        }
    }
}

/// Parses `http://host[:port][/prefix]` or `https://...` (plain HTTP never uses TLS).
pub fn parse_url(url: &str) -> Result<Address, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!(
            "expected a URL starting with http:// or https://, got {url:?}"
        ));
    };
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, String::new()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("bad port {port:?} in {url:?}"))?;
            (host, port)
        }
        None => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    Ok(Address {
        host: host.to_string(),
        port,
        tls,
        path_prefix: path.trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_urls_give_host_port_tls_and_prefix() {
        let cases = [
            ("http://127.0.0.1:18001", "127.0.0.1", 18001, false, ""),
            ("http://127.0.0.1:18001/", "127.0.0.1", 18001, false, ""),
            (
                "https://proxy.corp/openai/",
                "proxy.corp",
                443,
                true,
                "/openai",
            ),
            ("http://mock", "mock", 80, false, ""),
        ];
        for (url, host, port, tls, prefix) in cases {
            let address = parse_url(url).unwrap();
            assert_eq!(
                address,
                Address {
                    host: host.into(),
                    port,
                    tls,
                    path_prefix: prefix.into()
                },
                "{url}"
            );
        }
    }

    #[test]
    fn override_urls_without_scheme_or_with_bad_port_are_rejected() {
        assert!(parse_url("127.0.0.1:80").unwrap_err().contains("http://"));
        assert!(parse_url("http://h:99999")
            .unwrap_err()
            .contains("bad port"));
    }

    #[test]
    fn authority_omits_the_default_port() {
        assert_eq!(
            from_settings(ProviderKind::Openai, None, None, None).authority(),
            "api.openai.com"
        );
        let ollama = from_settings(
            ProviderKind::Openai,
            Some("ollama.ai.svc.cluster.local"),
            Some(11434),
            None,
        );
        assert_eq!(ollama.authority(), "ollama.ai.svc.cluster.local:11434");
        assert!(!ollama.tls);
    }
}
