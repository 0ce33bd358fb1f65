import type { ImageView } from '../../api/methods.js';
import { NO_RUNTIME_CONFIG, readRuntimeConfig } from '../../services/image/oci-config.js';
import type { OpContext } from '../../services/context.js';
import type { PullParams } from '../../services/image/params.js';
import type { ImageService } from '../../services/image/service.js';
import type { ImageRow } from '../../store/images.js';
import { precondition } from '../../errors.js';
import { templateView } from '../../services/vm/templates.js';
import type { WarmStart } from '../../services/vm/warm.js';
import type { Routes } from '../server.js';

export function imageView(i: ImageRow): ImageView {
  return {
    id: i.id,
    name: i.name,
    source: i.source,
    kernel: i.kernelName,
    distro: i.distro,
    size_bytes: i.sizeBytes,
    work_seed: i.workSeedPath !== undefined,
    created_at: i.createdAt,
  };
}

export interface ImageRouteDeps {
  images: ImageService;
  /** Names of the VMs made from an image (by image id). */
  usedBy: (imageId: string) => string[];
  /** `image pull --install-sshd` (daemon/install-sshd.ts); without it ImageService.pull refuses the flag. */
  pullWithSshd?: (p: PullParams, ctx: OpContext) => Promise<ImageRow>;
  /** Warm-start templates (services/vm/warm.ts): image warm, the list in image show, removal with the image. */
  warm?: Pick<WarmStart, 'warm' | 'removeForImage' | 'store'>;
  /** Names of the snapshots made from an image (image delete refuses while there are any). */
  snapshotsOf?: (imageId: string) => string[];
}

/** image.*: the ImageService's rows as the API's views. */
export function imageRoutes({ images, usedBy, pullWithSshd, warm, snapshotsOf }: ImageRouteDeps): Routes<'image'> {
  return {
    'image.list': () => images.list().map(imageView),
    'image.show': async (p) => {
      const i = images.get(p.name);
      const config = (await readRuntimeConfig(i.dir)) ?? NO_RUNTIME_CONFIG;
      return {
        ...imageView(i),
        dir: i.dir,
        rootfs: i.rootfsPath,
        managed: i.managed,
        assets_version: i.assetsVersion,
        vms: usedBy(i.id),
        config,
        templates: (await warm?.store.list())?.filter((t) => t.meta.image_id === i.id).map(templateView) ?? [],
      };
    },
    'image.delete': async (p) => {
      const { id, name } = images.get(p.name);
      const snaps = snapshotsOf?.(id) ?? [];
      if (snaps.length > 0)
        throw precondition(
          `image "${name}" is used by snapshot${snaps.length > 1 ? 's' : ''} ${snaps.join(', ')}`,
          `remove ${snaps.length > 1 ? 'them' : 'it'} first with \`banger vm snapshot rm ${snaps.join(' ')}\``,
        );
      const r = await images.delete(p.name);
      await warm?.removeForImage(id);
      return r;
    },
    'image.warm': async (p, ctx) => {
      if (!warm) throw precondition('this daemon has no warm start');
      const r = await warm.warm(p.name, ctx);
      return { name: r.template.meta.image_name, template: templateView(r.template), built: r.built };
    },
    'image.build': async (p, ctx) => imageView(await images.buildCustom(p, ctx)),
    'image.pull': async (p, ctx) =>
      imageView(await (p.install_sshd && pullWithSshd ? pullWithSshd(p, ctx) : images.pull(p, ctx))),
    'image.register': async (p, ctx) => imageView(await images.register(p, ctx)),
    'image.refresh': async (p, ctx) => {
      const before = images.get(p.name);
      const after = await images.refresh(p.name, ctx);
      return {
        name: after.name,
        id: after.id,
        assets_version: after.assetsVersion,
        previous_assets_version: before.assetsVersion,
      };
    },
    'image.promote': async (p) => imageView(await images.promote(p.name)),
    'image.cache.prune': (p) => images.pruneCache(p.dry_run ?? false),
    'image.export': (p, ctx) => images.export(p.name, p.out, ctx),
  };
}
