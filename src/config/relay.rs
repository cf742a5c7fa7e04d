//! The `[relay]` table: the per-tunnel buffer between a channel and a slow
//! client (memory first, then an unlinked spill file), and its caps. Sizes
//! are strings like `"256KiB"` or `"64MiB"` (`config::text::parse_size`);
//! `spill_dir` expands `~`. Checks only what the text can tell; whether the
//! directory is writable is checked at start (`tunnel_buffer::Budget::install`),
//! where the daemon has the right to touch the file system.

use toml::Spanned;

use super::model::RelaySettings;
use super::raw::RawRelay;
use super::text::{expand_tilde, parse_size};
use super::validate::Cx;
use super::ConfigError;

impl Cx<'_> {
    pub(super) fn relay(&self, r: &RawRelay) -> Result<RelaySettings, ConfigError> {
        let d = RelaySettings::default();
        let memory_per_tunnel = self.size("memory_per_tunnel", r.memory_per_tunnel.as_ref())?;
        if memory_per_tunnel == Some(0) {
            if let Some(v) = &r.memory_per_tunnel {
                return Err(self.err(v, "[relay] memory_per_tunnel must be more than zero"));
            }
        }
        let spill_per_tunnel = self
            .size("spill_per_tunnel", r.spill_per_tunnel.as_ref())?
            .unwrap_or(d.spill_per_tunnel);
        let spill_total = self
            .size("spill_total", r.spill_total.as_ref())?
            .unwrap_or(d.spill_total);
        if spill_total < spill_per_tunnel {
            let at = r
                .spill_total
                .as_ref()
                .or(r.spill_per_tunnel.as_ref())
                .map(|v| self.line_of(v.span().start))
                .unwrap_or(1);
            return Err(self.err_line(
                at,
                format!(
                    "[relay] spill_total ({spill_total} bytes) is less than spill_per_tunnel \
                     ({spill_per_tunnel} bytes): one tunnel could never use its share"
                ),
            ));
        }
        let spill_dir = match &r.spill_dir {
            None => d.spill_dir,
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self.err(p, "[relay] spill_dir is empty"));
            }
            Some(p) => expand_tilde(p.get_ref()),
        };
        Ok(RelaySettings {
            memory_per_tunnel: memory_per_tunnel
                .map(|m| usize::try_from(m).unwrap_or(usize::MAX))
                .unwrap_or(d.memory_per_tunnel),
            spill_dir,
            spill_per_tunnel,
            spill_total,
        })
    }

    /// A size key of `[relay]`, if present.
    fn size(&self, key: &str, v: Option<&Spanned<String>>) -> Result<Option<u64>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        parse_size(v.get_ref())
            .map(Some)
            .map_err(|e| self.err(v, format!("[relay] {key} = {:?}: {e}", v.get_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, GOOD};
    use super::*;

    #[test]
    fn defaults_without_the_table() {
        let c = parse(GOOD).expect("valid");
        assert_eq!(c.relay, RelaySettings::default());
        assert_eq!(c.relay.memory_per_tunnel, 256 * 1024);
        assert_eq!(c.relay.spill_per_tunnel, 64 << 20);
        assert_eq!(c.relay.spill_total, 2 << 30);
    }

    #[test]
    fn keys_are_typed() {
        let text = format!(
            "{GOOD}\n[relay]\nmemory_per_tunnel = \"64KiB\"\nspill_dir = \"~/spill\"\n\
             spill_per_tunnel = \"1MiB\"\nspill_total = \"3GiB\"\n"
        );
        let r = parse(&text).expect("valid").relay;
        assert_eq!(r.memory_per_tunnel, 64 * 1024);
        assert_eq!(r.spill_per_tunnel, 1 << 20);
        assert_eq!(r.spill_total, 3 << 30);
        assert!(
            !r.spill_dir.starts_with("~"),
            "~ expanded: {:?}",
            r.spill_dir
        );
        assert!(r.spill_dir.ends_with("spill"));
        let off = parse(&format!("{GOOD}\n[relay]\nspill_per_tunnel = \"0\"\n")).expect("valid");
        assert_eq!(off.relay.spill_per_tunnel, 0, "0 turns spilling off");
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let lines = GOOD.lines().count();
        let cases = [
            ("memory_per_tunnel = \"lots\"", "memory_per_tunnel"),
            ("memory_per_tunnel = \"0\"", "more than zero"),
            ("spill_per_tunnel = \"12 parsecs\"", "spill_per_tunnel"),
            ("spill_total = \"1MiB\"", "less than spill_per_tunnel"),
            ("spill_dir = \"\"", "spill_dir is empty"),
            ("spill_everything = true", "spill_everything"),
        ];
        for (line, want) in cases {
            let text = format!("{GOOD}\n[relay]\n{line}\n");
            let e = parse(&text).expect_err(line).to_string();
            let at = format!("/etc/jumpgate.toml:{}:", lines + 3);
            assert!(e.starts_with(&at), "{line}: {e} (want {at})");
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
