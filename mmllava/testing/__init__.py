"""What tools, tests and examples share outside the runtime: test doubles
(:mod:`~mmllava.testing.replay_server`), test helpers
(:mod:`~mmllava.testing.timeouts`) and the embedded CPU demo's generators
and assets (:mod:`mmllava.testing.demo`, behind ``tools/run_demo.py``).

No module of the runtime package (models, datasets, engine, apis, serving,
converters, evaluation, datagen, ...) imports this one: the dependency
points from here to the runtime, never back."""
