"""Example meta-analysis datasets, bundled as small CSV files (no network).

Each ``load_*`` function returns a fresh :class:`pandas.DataFrame` and cites, in
its docstring, the publication the data come from. :data:`DATASETS` maps a short
name to its loader, and :func:`load_dataset` loads by name.

- :func:`load_bcg`: BCG vaccine trials, Colditz et al. (1994); 13 x 9.
- :func:`load_pupil_iq`: teacher expectancy, Raudenbush (1984, 1985); 19 x 10.
- :func:`load_writing_to_learn`: Bangert-Drowns et al. (2004); 48 x 16.
- :func:`load_school_calendar`: Konstantopoulos (2011), Cooper et al. (2003);
  56 x 6.
- :func:`load_jia`: CCR5 and JIA, Hanada & Sugimoto, Table 1 (Hinks et al.,
  2010); 3 x 6.
- :func:`load_laopaiboon2015`: azithromycin, Laopaiboon et al. (2015); 15 x 11.
- :func:`load_collins1985b`: diuretics in pregnancy, Collins et al. (1985); 9 x 16.
- :func:`load_linde2005`: St John's wort, Linde et al. (2005); 26 x 17.
- :func:`load_colditz1994`: the same data as :func:`load_bcg`; 13 x 9.
- :func:`load_hine1989`: lidocaine, Hine et al. (1989); 6 x 6.
- :func:`load_nielweise2007`: anti-infective catheters, Niel-Weise et al.
  (2007); 18 x 7.
- :func:`load_cohen1981`: validity of instructor ratings, Cohen (1981); 20 x 5.
- :func:`load_hackshaw1998`: environmental tobacco smoke and lung cancer,
  Hackshaw (1998); 37 x 11.
- :func:`load_knapp2017`: cognitive flexibility tasks in schizophrenia, Knapp et
  al. (2017); several effect sizes per study; 66 x 14.
- :func:`load_assink2016`: delinquency and juvenile offending, Assink et al.
  (2016); several effect sizes per study; 100 x 8.
- :func:`load_baskerville2012`: practice facilitation, Baskerville, Liddy & Hogg
  (2012); 23 x 18.
"""

from skmeta.datasets._base import (
    DATASETS,
    load_assink2016,
    load_baskerville2012,
    load_bcg,
    load_cohen1981,
    load_colditz1994,
    load_collins1985b,
    load_dataset,
    load_hackshaw1998,
    load_hine1989,
    load_jia,
    load_knapp2017,
    load_laopaiboon2015,
    load_linde2005,
    load_nielweise2007,
    load_pupil_iq,
    load_school_calendar,
    load_writing_to_learn,
)

__all__ = [
    "DATASETS",
    "load_assink2016",
    "load_baskerville2012",
    "load_bcg",
    "load_cohen1981",
    "load_colditz1994",
    "load_collins1985b",
    "load_dataset",
    "load_hackshaw1998",
    "load_hine1989",
    "load_jia",
    "load_knapp2017",
    "load_laopaiboon2015",
    "load_linde2005",
    "load_nielweise2007",
    "load_pupil_iq",
    "load_school_calendar",
    "load_writing_to_learn",
]
