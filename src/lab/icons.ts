import { LabIcon } from '@jupyterlab/ui-components';

import remoteClusterSvg from '../../style/icons/remote-cluster.svg';

export const remoteClusterIcon = new LabIcon({
  name: 'jupyterlab-remote-cluster:cluster',
  svgstr: remoteClusterSvg
});
