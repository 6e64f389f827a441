"""Source connectors: remote APIs and files that produce topic messages (plain dicts).

Every message passes the validator of its topic in :mod:`warehouse.topics`; event times are
integer milliseconds since the epoch (UTC).

========================================  ====================  ===========================
module                                    reads                 produces
========================================  ====================  ===========================
:mod:`pipelines.sources.binance`          ``/api/v3/klines``    ``market.candles``
:mod:`pipelines.sources.coingecko`        ``/coins/markets``,   ``market.tickers``,
                                          ``market_chart/range``  ``market.candles``
:mod:`pipelines.sources.alternative_me`   ``/fng/``             ``market.fear_greed``
:mod:`pipelines.sources.candle_files`     OHLCV CSV, kline JSON ``market.candles``
:mod:`pipelines.sources.post_files`       tweet/headline CSV    ``social.posts``
:mod:`pipelines.sources.fear_greed_files` index JSON/CSV        ``market.fear_greed``
========================================  ====================  ===========================

:mod:`pipelines.sources.http` is the HTTP client the API clients share (timeouts, retries with
backoff honouring ``Retry-After``, a rate limit); :mod:`pipelines.sources.symbols` maps coin
names, cashtags and hashtags to exchange symbols; :mod:`pipelines.sources.event_time` turns
source times into epoch milliseconds. Every failure is a :class:`warehouse.errors.SourceError`.
"""
