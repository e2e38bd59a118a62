//! unionrs-oci-layer: writes the upper directory of a unionrs or overlayfs union as an OCI image
//! layer (a tar in the image-spec's layer format), and with `--verify`, checks that applying
//! it onto the lower layers gives the union's view. See README.md ("Containers").
//!
//! Exit status: 0 done (and verified), 1 the verification found differences, 2 an error.

mod export;
mod tree;
mod verify;

use clap::Parser;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tree::{Lowers, Private};

#[derive(Parser)]
#[command(name = "unionrs-oci-layer", version, about = "Writes a union's upper directory as an OCI image layer")]
struct Args {
    /// The union's upper directory (not mounted over; the union may be mounted elsewhere).
    upper: PathBuf,
    /// The layer tarball to write ("-": standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// The union's lower layers, top first, as lowerdir= takes them ("::" before data-only
    /// layers); needed when the upper has redirected directories or metacopy files.
    #[arg(long)]
    lowers: Option<String>,
    /// The union was mounted with userxattr: its private xattrs are user.overlay.*.
    #[arg(long)]
    userxattr: bool,
    /// The union was mounted with whiteout=oci: `.wh.NAME` files in its layers are whiteouts
    /// and `.wh..wh..opq` makes a directory opaque, as in OCI layers.
    #[arg(long)]
    oci_whiteouts: bool,
    /// After writing, apply the layer onto these lower layers (lowerdir= syntax) and compare
    /// the result with the union's view.
    #[arg(long, value_name = "LOWERS")]
    verify: Option<String>,
    /// The mounted union to compare with; without it, the view is computed from the lower
    /// layers and the upper directory by the overlay rules.
    #[arg(long, requires = "verify")]
    view: Option<PathBuf>,
    /// The view may show hard links of the upper directory as separate objects (overlayfs
    /// mounted in a user namespace cannot follow a copied-up file's origin, and numbers a
    /// name looked up afresh by the upper inode): their identity is not compared.
    #[arg(long, requires = "view")]
    view_may_split_links: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("unionrs-oci-layer: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let px = Private::new(args.userxattr, args.oci_whiteouts);
    let lowers = args.lowers.as_deref().map(Lowers::parse).transpose()?;
    let plan = export::plan(&args.upper, lowers.as_ref(), px)?;
    for s in &plan.skipped {
        eprintln!("unionrs-oci-layer: '{s}' is a socket, which a layer cannot hold: left out");
    }
    let io_err = |e: std::io::Error| format!("{}: {e}", args.output.display());
    if args.output.as_os_str() == "-" {
        let out = export::write(&plan.items, BufWriter::new(std::io::stdout().lock())).map_err(io_err)?;
        out.into_inner().map_err(|e| io_err(e.into_error()))?.flush().map_err(io_err)?;
    } else {
        let out = export::write(&plan.items, BufWriter::new(File::create(&args.output).map_err(io_err)?)).map_err(io_err)?;
        out.into_inner().map_err(|e| io_err(e.into_error()))?.sync_all().map_err(io_err)?;
    }
    let Some(spec) = &args.verify else {
        return Ok(true);
    };
    if args.output.as_os_str() == "-" {
        return Err("--verify reads the layer back: give a file with --output".into());
    }
    let verify_lowers = Lowers::parse(spec)?;
    let want = match &args.view {
        Some(view) => tree::walk(view)?,
        None => {
            let mut t = tree::merge_lowers(&verify_lowers, px)?;
            let root = tree::read_node(&args.upper).map_err(|e| format!("{}: {e}", args.upper.display()))?;
            t.insert(Vec::new(), root);
            tree::overlay_upper(&mut t, &args.upper, b"", b"", Some(&verify_lowers), px)?;
            t
        }
    };
    let mut got = tree::merge_lowers(&verify_lowers, px)?;
    let links = verify::apply(&mut got, &args.output)?;
    let mut diffs = verify::compare(&want, &got, 50)?;
    if let Some(view) = args.view.as_ref().filter(|_| !args.view_may_split_links) {
        diffs.extend(verify::check_links(view, &links));
    }
    for d in &diffs {
        println!("differs: {d}");
    }
    println!("unionrs-oci-layer: {} entries, {} objects compared, {} differences", plan.items.len(), want.len(), diffs.len());
    Ok(diffs.is_empty())
}
