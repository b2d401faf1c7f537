"""Where the label is: heatmaps, masks and boxes for generated images (the paper's §5.3, Figure 5).

  attention  the label tokens' cross-attention maps of a diffusers denoiser, accumulated while the
             pipeline runs (`AttentionHeatmaps`, `generate_with_heatmaps`, `label_token_positions`)
  boxes      heatmap -> mask -> box (`heatmap_to_mask`, `mask_to_box`), glyph ink masks (`ink_mask`),
             heatmap files beside their images (`save_heatmap`, `load_heatmap`)
  export     COCO JSON (boxes + RLE masks) and YOLO txt files for an ImageFolder
  grid       a sample grid with heatmaps and boxes drawn over the images
  detection  localize=attention in a run: the backend's check before any image, and the detection
             dataset written beside the exported ImageFolder (`check_backend`, `write_detection`)

The store (odin/store.py) makes each heatmap with its image, in the same unit of work, records it
in the unit's rows (file and size) and makes only the heatmaps of images made without them.

Heavy imports (torch, diffusers, pycocotools, matplotlib) happen inside the submodules, so
importing this package stays light.
"""
