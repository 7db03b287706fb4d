"""The book layer: profiles, the glue the chapters call, charts, the site, batches, the CLI.

=================  ===========================================================================
module             job
=================  ===========================================================================
``chapters``       the chapter catalog: each chapter file, what it compares, what it needs
``params``         typed parameter profiles (``params/*.yaml``), checked before any work
``sweeps``         sweep files expanded to one validated run each
``experiment``     profile → data → embeddings → arrangement → run → score table
``analyses``       a profile's data handed to :mod:`zsg_lib.analysis`; every finding collected
``plots``          the Altair charts the chapters show
``render``         offline chart rendering (the Vega bundle, site and inline renderers)
``site``           the Sphinx extension and the table of contents
``build``          ``jupyter-book build`` of the whole book with its execution cache
``batch``          chapters and sweeps through papermill, resumable
``cli``            the ``zsg`` command
=================  ===========================================================================
"""
