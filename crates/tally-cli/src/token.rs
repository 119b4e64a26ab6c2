//! `tally token create|list|revoke`: named admin tokens in `DATA_DIR/tokens.json`, stored
//! hashed (`tally_collector::TokenFile`). A running collector picks changes up at its next
//! request.

use std::path::PathBuf;

use anyhow::bail;
use tally_collector::TokenFile;

use crate::DEFAULT_DATA_DIR;

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    action: Action,
    /// The collector's data directory.
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR, env = "TALLY_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Make a token and print it (the only time it is shown).
    Create {
        /// What it is for, e.g. `ci` or `grafana` (A-Z, a-z, 0-9, '.', '_', '-').
        name: String,
    },
    /// Name every token and when it was made (never the tokens).
    List,
    /// Remove a token: a running collector refuses it from its next request on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    // Tokens belong to a store: a mistyped data dir must not get a tokens file of its own.
    if !args.data_dir.join(tally_store::SECRET_FILE).is_file() {
        bail!(
            "no tally data dir at {} ({} is missing); pass the collector's --data-dir",
            args.data_dir.display(),
            tally_store::SECRET_FILE
        );
    }
    let file = TokenFile::in_dir(&args.data_dir);
    match args.action {
        Action::Create { name } => {
            let token = file.create(&name)?;
            println!("{token}");
            eprintln!(
                "created token {name:?}; it is shown only now (only its hash is kept in {})",
                args.data_dir.join(tally_collector::TOKENS_FILE).display()
            );
        }
        Action::List => {
            let tokens = file.list()?;
            if tokens.is_empty() {
                eprintln!("no named tokens; make one with `tally token create NAME`");
            }
            for t in tokens {
                println!("{}\t{}", t.name, t.created_at);
            }
        }
        Action::Revoke { name } => {
            file.revoke(&name)?;
            println!("revoked token {name:?}");
        }
    }
    Ok(())
}
