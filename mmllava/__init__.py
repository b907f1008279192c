"""mmllava: LLaVA (visual instruction tuning) on mmengine.

Importing it registers and patches nothing: tools, ``get_model`` and tests
call :func:`mmllava.setup_env.register_all_modules` once.
"""
__version__ = '0.1.0'
