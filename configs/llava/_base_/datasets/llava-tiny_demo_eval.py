# Demo evaluation: held-out scenes answered greedily through the model base's
# test_pipeline.
_base_ = ['../models/llava-tiny_demo.py']

test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
)
test_cfg = dict(type='TestLoop')
eval_root = 'data/demo/eval/'
