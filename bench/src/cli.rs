//! The benchmark's command line: `nlock-bench [--quick] [--out FILE] [--only 1,2,3,4,5]
//! [--leadership DIR]` (see `main.rs`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};

/// What a run was asked to do.
pub struct Options {
    pub quick: bool,
    pub out: PathBuf,
    pub only: Vec<u8>,
    pub leadership: Option<PathBuf>,
}

pub fn parse_args(args: &[String]) -> Result<Options> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("no repository root"))?
        .to_path_buf();
    let mut quick = false;
    let mut out = None;
    let mut only = vec![1, 2, 3, 4, 5];
    let mut leadership = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => {
                out = Some(PathBuf::from(
                    it.next().ok_or_else(|| anyhow!("--out FILE"))?,
                ))
            }
            "--leadership" => {
                let dir = it.next().ok_or_else(|| anyhow!("--leadership DIR"))?;
                leadership = Some(PathBuf::from(dir));
            }
            "--only" => {
                let list = it.next().ok_or_else(|| anyhow!("--only 1,2,..."))?;
                only = list
                    .split(',')
                    .map(|w| w.trim().parse::<u8>())
                    .collect::<Result<_, _>>()
                    .context("--only takes workload numbers, e.g. 1,4")?;
            }
            "-h" | "--help" => {
                println!(
                    "nlock-bench [--quick] [--out FILE] [--only 1,2,3,4,5] [--leadership DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; see --help"),
        }
    }
    let out = out.unwrap_or_else(|| {
        if quick {
            root.join("target")
                .join("bench-quick")
                .join("BENCHMARKS.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    Ok(Options {
        quick,
        out,
        only,
        leadership,
    })
}
