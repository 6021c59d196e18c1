"""Command line: ``python -m skmeta`` runs the main job on bundled data."""

import argparse
import sys


def main(argv=None):
    """Run the command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(
        prog="skmeta", description="Meta-analysis with skmeta."
    )
    parser.parse_args(argv)
    from skmeta import RandomEffectsMeta
    from skmeta.datasets import load_bcg
    from skmeta.effect_sizes import log_risk_ratio

    bcg = load_bcg()
    es = log_risk_ratio(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
    model = RandomEffectsMeta().fit(None, es.yi, sample_var=es.vi)
    print("BCG vaccine trials (Colditz et al. 1994): log risk ratios\n")
    print(model.summary())
    moderated = RandomEffectsMeta().fit(bcg[["ablat"]], es.yi, sample_var=es.vi)
    print("\nMeta-regression on absolute latitude\n")
    print(moderated.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
