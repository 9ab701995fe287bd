# The X-FM batch (docs/en/design.md, "The batch"): the fields each source's
# samples carry, declared once for every X-FM pre-training config. The last
# transform of each pipeline packs them, requiring each one (dtypes
# inferred: int64 arrays -> long, bool -> bool, float -> float32, the int
# image_id stays an int); the data preprocessor (configs/_base_/models/
# xfm_base.py) batches them per text or per image.
text_fields = [
    'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos', 'masked_labels'
]
image_fields = ['image_mask', 'image_id']
region_fields = text_fields + [
    'boxes', 'region_patch_mask', 'is_whole_image', 'image_id'
]

pack_text = dict(type='PackMultiSourceInputs', fields=text_fields)
pack_image = dict(type='PackMultiSourceInputs', fields=image_fields)
pack_image_text = dict(
    type='PackMultiSourceInputs', fields=text_fields + image_fields)
pack_region = dict(type='PackMultiSourceInputs', fields=region_fields)
