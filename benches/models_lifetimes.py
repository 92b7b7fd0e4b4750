"""The `lifetimes` package (PyPI, 0.11.3) fitting BG/NBD and Gamma-Gamma on the CDNOW sample, the
data of `benches/models.rs`: the same calibration (1997-01-01 .. 1997-09-30, weeks) and the same
customers. Prints the median of 20 fits of each, after 3 warm-up fits, and the parameters.

    pip install lifetimes
    python3 benches/models_lifetimes.py
"""
import os
import statistics
import time
import warnings

warnings.filterwarnings("ignore")
import pandas as pd  # noqa: E402
from lifetimes import BetaGeoFitter, GammaGammaFitter  # noqa: E402
from lifetimes.utils import summary_data_from_transaction_data  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
rows = []
with open(os.path.join(here, "..", "..", "shared", "data", "cdnow", "CDNOW_sample.txt")) as f:
    for line in f:
        p = line.split()
        if len(p) == 5:
            rows.append((p[1], p[2], float(p[4])))
df = pd.DataFrame(rows, columns=["id", "date", "value"])
df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
s = summary_data_from_transaction_data(
    df, "id", "date", monetary_value_col="value", observation_period_end="1997-09-30", freq="D"
)
s["recency"] /= 7.0
s["T"] /= 7.0
repeat = s[s["frequency"] > 0]
assert len(s) == 2357 and len(repeat) == 946


def timed(fit, n=20, warm=3):
    for _ in range(warm):
        fit()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        model = fit()
        out.append(time.perf_counter() - t)
    return statistics.median(out), min(out), max(out), model


def bg():
    m = BetaGeoFitter()
    m.fit(s["frequency"], s["recency"], s["T"])
    return m


def gg():
    m = GammaGammaFitter()
    m.fit(repeat["frequency"], repeat["monetary_value"])
    return m


for name, fit in [("bgnbd_2357_customers", bg), ("gamma_gamma_946_customers", gg)]:
    med, lo, hi, model = timed(fit)
    params = {k: round(v, 4) for k, v in model.params_.to_dict().items()}
    print(f"lifetimes {name}: median {med * 1e3:.1f} ms (range {lo * 1e3:.1f}-{hi * 1e3:.1f}) {params}")
