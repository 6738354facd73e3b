//! The MCP servers behind the gateway: started as child processes speaking
//! stdio, or reached over streamable HTTP.

use crate::GatewayError;
use crate::call::{Hints, valid_upstream_name};
use rmcp::model::{ProgressNotificationParam, ProgressToken, Tool};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, RoleServer, ServiceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// Relays an upstream's progress notifications to the client whose call they
/// are about. The MCP client library gives every request it sends a progress
/// token of its own; a forwarded call registers that token, mapped back to the
/// client's token and connection, for as long as the call runs.
#[derive(Clone, Default)]
pub struct ProgressRelay {
    routes: Arc<Mutex<HashMap<String, Destination>>>,
}

/// Where one forwarded call's progress goes: the client's connection, its
/// token, and the progress it has already seen.
#[derive(Clone)]
struct Destination {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    base: f64,
}

/// A forwarded call's progress route, removed when the call ends.
pub struct Route {
    relay: ProgressRelay,
    key: String,
}

impl Drop for Route {
    fn drop(&mut self) {
        self.relay.routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
    }
}

fn token_key(t: &ProgressToken) -> String {
    serde_json::to_string(&t.0).unwrap_or_default()
}

impl ProgressRelay {
    /// Relay the upstream's progress on `upstream_token` to `client_token` on
    /// `peer`, until the route is dropped. `base` is the progress the client
    /// has already seen for this call (while it waited for a reviewer): the
    /// upstream's progress and total are shifted by it, because progress must
    /// only increase.
    pub fn route(
        &self,
        upstream_token: &ProgressToken,
        peer: Peer<RoleServer>,
        client_token: ProgressToken,
        base: f64,
    ) -> Route {
        let key = token_key(upstream_token);
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), Destination { peer, token: client_token, base });
        Route { relay: self.clone(), key }
    }
}

impl ClientHandler for ProgressRelay {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        let key = token_key(&params.progress_token);
        let route = self.routes.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some(Destination { peer, token, base }) = route {
            let mut relayed = params;
            relayed.progress_token = token;
            relayed.progress += base;
            relayed.total = relayed.total.map(|t| t + base);
            let _ = peer.notify_progress(relayed).await;
        }
    }
}

/// How to reach one upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A command line run by `sh -c`, speaking MCP on its stdin and stdout.
    Command(String),
    /// A streamable HTTP endpoint, e.g. `http://127.0.0.1:3001/mcp`.
    Url(String),
}

/// One upstream: its namespace and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// The namespace of its tools: `fs` makes `write_file` into `fs.write_file`.
    pub name: String,
    /// Where it is.
    pub target: Target,
}

impl UpstreamSpec {
    /// Read `NAME=TARGET` or a bare target, whose name is then derived from it
    /// (`npx -y @modelcontextprotocol/server-filesystem /srv` → `filesystem`,
    /// `http://host/github/mcp` → `host`).
    pub fn parse(raw: &str, url: bool) -> Result<UpstreamSpec, GatewayError> {
        let raw = raw.trim();
        let (name, target) = match raw.split_once('=') {
            Some((n, t)) if valid_upstream_name(n) => (Some(n.to_string()), t.trim().to_string()),
            _ => (None, raw.to_string()),
        };
        let wrong = |m: String| Err(GatewayError::Config(m));
        if target.is_empty() {
            return wrong(format!("the upstream `{raw}` names no {}", if url { "URL" } else { "command" }));
        }
        if url && !(target.starts_with("http://") || target.starts_with("https://")) {
            return wrong(format!("the upstream URL `{target}` must start with http:// or https://"));
        }
        let name = match name.or_else(|| derive_name(&target, url)) {
            Some(n) => n,
            None => {
                return wrong(format!("cannot derive a name for the upstream `{target}`: write it as NAME={target}"));
            }
        };
        Ok(UpstreamSpec { name, target: if url { Target::Url(target) } else { Target::Command(target) } })
    }
}

/// A short name for an upstream from its command or URL.
fn derive_name(target: &str, url: bool) -> Option<String> {
    let raw = if url {
        let rest = target.split_once("://")?.1;
        rest.split(['/', ':']).next()?.split('.').next()?.to_string()
    } else {
        const RUNNERS: [&str; 8] = ["npx", "uvx", "node", "python", "python3", "bunx", "pnpm", "deno"];
        let words: Vec<&str> = target.split_whitespace().collect();
        let program = words.first()?.rsplit('/').next()?;
        let word = if RUNNERS.contains(&program) {
            words.iter().skip(1).find(|w| !w.starts_with('-') && *w != &"dlx" && *w != &"run")?
        } else {
            program
        };
        let last = word.rsplit('/').next()?;
        let last = last.split('@').next().filter(|s| !s.is_empty()).unwrap_or(last);
        let last = last.trim_end_matches(".js").trim_end_matches(".py");
        ["mcp-server-", "server-", "mcp-"].iter().fold(last.to_string(), |s, p| s.strip_prefix(p).unwrap_or(&s).into())
    };
    let name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(32).collect();
    valid_upstream_name(&name).then_some(name)
}

/// A connected upstream, with the tools it listed last.
pub struct Upstream {
    /// Its namespace.
    pub name: String,
    service: RunningService<RoleClient, ProgressRelay>,
    /// Where the upstream's progress notifications go.
    pub progress: ProgressRelay,
    tools: RwLock<HashMap<String, Tool>>,
}

impl Upstream {
    /// Start or reach the upstream and complete the MCP handshake.
    pub async fn connect(spec: &UpstreamSpec) -> Result<Upstream, GatewayError> {
        let progress = ProgressRelay::default();
        let service = match &spec.target {
            Target::Command(cmd) => {
                let mut command = tokio::process::Command::new("sh");
                command.arg("-c").arg(format!("exec {cmd}"));
                let (transport, _) = TokioChildProcess::builder(command)
                    .stderr(std::process::Stdio::inherit())
                    .spawn()
                    .map_err(|source| GatewayError::Start { name: spec.name.clone(), command: cmd.clone(), source })?;
                progress.clone().serve(transport).await.map_err(|source| GatewayError::Handshake {
                    name: spec.name.clone(),
                    target: cmd.clone(),
                    source: Box::new(source),
                })?
            }
            Target::Url(url) => {
                let transport = StreamableHttpClientTransport::from_uri(url.as_str());
                progress.clone().serve(transport).await.map_err(|source| GatewayError::Handshake {
                    name: spec.name.clone(),
                    target: url.clone(),
                    source: Box::new(source),
                })?
            }
        };
        let up = Upstream { name: spec.name.clone(), service, progress, tools: RwLock::new(HashMap::new()) };
        up.list_tools().await?;
        Ok(up)
    }

    /// The upstream's tools, fresh (and remembered for their annotations).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, GatewayError> {
        let tools = self
            .service
            .peer()
            .list_all_tools()
            .await
            .map_err(|source| GatewayError::ListTools { name: self.name.clone(), source })?;
        let mut cache = self.tools.write().unwrap_or_else(|e| e.into_inner());
        cache.clear();
        cache.extend(tools.iter().map(|t| (t.name.to_string(), t.clone())));
        Ok(tools)
    }

    /// Whether the upstream listed this tool, refreshing the list once if not.
    pub async fn has_tool(&self, tool: &str) -> bool {
        if self.tools.read().unwrap_or_else(|e| e.into_inner()).contains_key(tool) {
            return true;
        }
        self.list_tools().await.is_ok() && self.tools.read().unwrap_or_else(|e| e.into_inner()).contains_key(tool)
    }

    /// The annotations the upstream gave this tool, as hints.
    pub fn hints(&self, tool: &str) -> Hints {
        let tools = self.tools.read().unwrap_or_else(|e| e.into_inner());
        let Some(a) = tools.get(tool).and_then(|t| t.annotations.as_ref()) else { return Hints::default() };
        Hints {
            read_only: a.read_only_hint,
            destructive: a.destructive_hint,
            idempotent: a.idempotent_hint,
            open_world: a.open_world_hint,
        }
    }

    /// The client side of the connection, to call tools on.
    pub fn peer(&self) -> &rmcp::Peer<RoleClient> {
        self.service.peer()
    }

    /// Close the connection (and end the child process).
    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_given_or_derived() {
        let s = UpstreamSpec::parse("fs=npx -y @modelcontextprotocol/server-filesystem /srv", false).unwrap();
        assert_eq!(s.name, "fs");
        assert_eq!(s.target, Target::Command("npx -y @modelcontextprotocol/server-filesystem /srv".into()));
        let derived = |raw: &str, url: bool| UpstreamSpec::parse(raw, url).unwrap().name;
        assert_eq!(derived("npx -y @modelcontextprotocol/server-filesystem /srv", false), "filesystem");
        assert_eq!(
            derived("node ./node_modules/@modelcontextprotocol/server-everything/dist/index.js", false),
            "index"
        );
        assert_eq!(derived("uvx mcp-server-git --repository .", false), "git");
        assert_eq!(derived("/usr/local/bin/github-mcp stdio", false), "github-mcp");
        assert_eq!(derived("http://127.0.0.1:3001/mcp", true), "127");
        assert_eq!(derived("https://tools.example.com/mcp", true), "tools");
        assert_eq!(derived("web=https://tools.example.com/mcp", true), "web");
        // An `=` later in a command is part of the command.
        let s = UpstreamSpec::parse("python3 server.py --mode=fast", false).unwrap();
        assert_eq!(s.target, Target::Command("python3 server.py --mode=fast".into()));
        assert_eq!(s.name, "server");
        assert!(UpstreamSpec::parse("ftp://x", true).is_err());
        assert!(UpstreamSpec::parse("fs=", false).is_err());
    }
}
