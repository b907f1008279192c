"""lmms-eval plugin: ``LMMS_EVAL_PLUGINS=mmllava.lmms_eval_plugin
lmms-eval --model mmllava --model_args pretrained=CKPT,config=MODEL ...``.

lmms-eval imports ``<plugin>.models`` and reads its ``AVAILABLE_MODELS``;
the class lives in ``<plugin>.models.mmllava``. Its command line also
reads the plugin's ``tasks`` package (empty here: lmms-eval's own tasks).
"""
