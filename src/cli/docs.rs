//! `mailtrail generate-docs DIR` (hidden; run when packaging): the man pages `mailtrail(8)`,
//! from the clap definitions with one section per subcommand, and `mailtrail.toml(5)`, from the
//! annotated example configuration (every key with its default), gzipped as Debian installs
//! them; and shell completions for bash, zsh and fish.

use super::{Cli, CliError};
use clap::CommandFactory;
use clap_complete::Shell;
use std::{io::Write, path::Path};

/// The example configuration the package installs, every key documented.
const EXAMPLE_CONFIG: &str = include_str!("../../config/mailtrail.toml");

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn generate_docs(dir: &Path, out: &mut impl Write) -> Result<(), CliError> {
    for sub in ["man8", "man5", "completions"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io(&dir.join(sub)))?;
    }
    let page8 = dir.join("man8/mailtrail.8.gz");
    write_gz(&page8, &program_page()?)?;
    let page5 = dir.join("man5/mailtrail.toml.5.gz");
    write_gz(&page5, config_page().as_bytes())?;
    for (shell, name) in [
        (Shell::Bash, "mailtrail"),
        (Shell::Zsh, "_mailtrail"),
        (Shell::Fish, "mailtrail.fish"),
    ] {
        let path = dir.join("completions").join(name);
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        clap_complete::generate(shell, &mut Cli::command(), "mailtrail", &mut file);
    }
    writeln!(
        out,
        "man pages and completions written to {}",
        dir.display()
    )?;
    Ok(())
}

fn write_gz(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    gz.write_all(bytes).map_err(io(path))?;
    gz.finish().map_err(io(path))?;
    Ok(())
}

/// `mailtrail(8)`: the program, then a section per subcommand (and per subcommand of those).
fn program_page() -> Result<Vec<u8>, CliError> {
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("mailtrail")
        .render(&mut page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_section(&mut page, "mailtrail", sub)?;
    }
    page.extend_from_slice(
        b".SH FILES\n.TP\n/etc/mailtrail/mailtrail.toml\nthe configuration, see \\fBmailtrail.toml\\fR(5)\n\
          .TP\n/var/lib/mailtrail\nthe state directory: store, archive, users file\n\
          .SH \"SEE ALSO\"\n\\fBmailtrail.toml\\fR(5), \\fBpostfix\\fR(1), \\fBsendmail\\fR(8)\n",
    );
    Ok(page)
}

fn subcommand_section(
    page: &mut Vec<u8>,
    prefix: &str,
    sub: &clap::Command,
) -> Result<(), CliError> {
    let name = format!("{prefix} {}", sub.get_name());
    writeln!(page, ".SH \"{}\"", name.to_uppercase())?;
    let man = clap_mangen::Man::new(
        sub.clone()
            .bin_name(name.clone())
            .display_name(name.clone()),
    );
    let mut parts = Vec::new();
    man.render_synopsis_section(&mut parts)?;
    man.render_description_section(&mut parts)?;
    if sub.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut parts)?;
    }
    // Sections of their own in the program's page: subsections here.
    let text = String::from_utf8_lossy(&parts)
        .replace(".SH SYNOPSIS", ".SS Synopsis")
        .replace(".SH DESCRIPTION", ".SS Description")
        .replace(".SH OPTIONS", ".SS Options");
    page.extend_from_slice(text.as_bytes());
    for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_section(page, &name, nested)?;
    }
    Ok(())
}

/// `mailtrail.toml(5)`: the annotated example, each table a section.
fn config_page() -> String {
    let mut page = format!(
        ".TH MAILTRAIL.TOML 5 \"\" \"mailtrail {}\" \"mailtrail\"\n\
         .SH NAME\nmailtrail.toml \\- configuration of mailtrail\n\
         .SH DESCRIPTION\nOne TOML file, /etc/mailtrail/mailtrail.toml by default (\\fB--config\\fR \
         to choose another). Every key is optional; the values below are the defaults. Unknown \
         keys and bad values are errors that name the file, line and key; \
         \\fBmailtrail check-config\\fR prints the settings in force, and SIGHUP re-reads the file.\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut in_example = false;
    for line in EXAMPLE_CONFIG.lines() {
        let trimmed = line.trim_start_matches("# ").trim();
        let is_table = trimmed.starts_with('[') && trimmed.ends_with(']') && !trimmed.contains(' ');
        if is_table {
            if in_example {
                page.push_str(".fi\n");
            }
            page.push_str(&format!(".SH \"{}\"\n.nf\n", roff_text(trimmed)));
            in_example = true;
        } else if in_example {
            page.push_str(&roff_text(line));
            page.push('\n');
        }
    }
    if in_example {
        page.push_str(".fi\n");
    }
    page.push_str(".SH \"SEE ALSO\"\n\\fBmailtrail\\fR(8)\n");
    page
}

/// A line as roff text: backslashes escaped, and no line starting a request.
fn roff_text(line: &str) -> String {
    let escaped = line.replace('\\', "\\e");
    match escaped.starts_with('.') || escaped.starts_with('\'') {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_have_a_section_per_subcommand_and_every_table() {
        let program = String::from_utf8(program_page().unwrap()).unwrap();
        for section in [
            ".SH \"MAILTRAIL RUN\"",
            ".SH \"MAILTRAIL SUPPRESS ADD\"",
            ".SH \"MAILTRAIL USER PASSWD\"",
            ".SH \"MAILTRAIL ARCHIVE LS\"",
        ] {
            assert!(program.contains(section), "{section}");
        }
        assert!(!program.contains("GENERATE-DOCS"), "hidden");
        let config = config_page();
        for table in [
            "[milter]",
            "[archive]",
            "[suppression]",
            "[web]",
            "[report]",
            "[fleet]",
        ] {
            assert!(config.contains(&format!(".SH \"{table}\"")), "{table}");
        }
        assert!(config.contains("full_mailbox_after = 3"));
    }
}
